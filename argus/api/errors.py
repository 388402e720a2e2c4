"""OpenAI-shaped error bodies: `{"error": {"message", "type", "param", "code"}}`.

Every 4xx/5xx the API sends goes through `error_response`; bad input is never a 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from argus.api.schemas import InvalidField
from argus.runtime.base import Overloaded

log = logging.getLogger("argus.api")

ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


def _printable(text: str | None) -> str | None:
    """`text` safe to encode as UTF-8 JSON (a lone surrogate echoed back must not be a 500)."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": _printable(message), "type": kind, "param": _printable(param),
                      "code": code}}


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    retry_after_s: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after_s:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse(error_body(status, message, param, code), status, headers=headers)


def overloaded_response(err: Overloaded) -> JSONResponse:
    return error_response(err.status_code, err.reason, code=err.code,
                          retry_after_s=err.retry_after_s)


def _validation_param(err: RequestValidationError) -> tuple[str | None, str]:
    first = err.errors()[0] if err.errors() else {}
    if first.get("type") == "json_invalid":
        return None, f"invalid JSON body: {first.get('ctx', {}).get('error', 'cannot parse')}"
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    return param, f"{param}: {message}" if param else message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        param, message = _validation_param(err)
        return error_response(400, message, param=param, code="invalid_value")

    @app.exception_handler(InvalidField)
    async def _invalid(_: Request, err: InvalidField) -> JSONResponse:
        return error_response(400, str(err), param=err.param, code=err.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), headers=err.headers)

    @app.exception_handler(Exception)
    async def _internal(_: Request, err: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, f"internal error: {type(err).__name__}", code="internal")
