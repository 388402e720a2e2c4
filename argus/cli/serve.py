"""`argus serve`: the HTTP API over N local worker processes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argus.config import ServerConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the OpenAI-compatible image API over local worker processes"
    )
    parser.add_argument("--config", help="YAML/TOML config (default: the embedded one)")
    parser.add_argument("--host", help="bind address (default: server.host of the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port of the config)")
    parser.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.set_defaults(func=run)


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """uvicorn's connection limits from `server.*` (the body cap and read deadline are the app's:
    `argus.api.edge.BodyGuard`). h11, so that the header limit and the framing checks (both
    Content-Length and Transfer-Encoding is a 400) hold whatever else is installed."""
    return {
        "host": server.host,
        "port": server.port,
        "http": "h11",
        "timeout_keep_alive": server.keep_alive_s,
        "limit_concurrency": server.max_connections,
        "backlog": server.backlog,
        "h11_max_incomplete_event_size": server.max_header_bytes,
    }


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from argus.api import create_app
    from argus.cache.serving import build_cache_hook
    from argus.defaults import load_config
    from argus.runtime.dispatcher import build_runtime

    config = load_config(args.config)
    overrides = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if overrides:
        server = config.server.model_copy(update=overrides)
        config = config.model_copy(update={"server": server})
    app = create_app(config, runtime=build_runtime(config, cache=build_cache_hook(config)))
    uvicorn.run(app, log_level=args.log_level, **uvicorn_options(config.server))
    return 0
