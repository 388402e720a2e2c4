"""The OpenAI-compatible HTTP API: `create_app(config, runtime=None)`."""

from argus.api.app import create_app

__all__ = ["create_app"]
