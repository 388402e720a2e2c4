"""`argus serve`: the HTTP API over N worker processes (local, or Ray actors), under any
registered serving policy."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argus.config import ArgusConfig, ServerConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the OpenAI-compatible image API over local worker processes"
    )
    parser.add_argument("--config", help="YAML/TOML config (default: the embedded one)")
    parser.add_argument("--host", help="bind address (default: server.host of the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port of the config)")
    parser.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    parser.add_argument("--policy", help="serving policy by name (default: control.policy, "
                        "argus); any baseline runs on real workers: clipper-ha, clipper-ht, "
                        "proteus, random, nirvana, pac, diffserve")
    parser.add_argument("--runtime", choices=["local", "ray"],
                        help="worker backend (default: server.runtime)")
    parser.add_argument("--ray-address", help="with --runtime ray: '' starts a local Ray, "
                        "'auto' or HOST:PORT joins a cluster (default: server.ray_address)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.set_defaults(func=run)


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """uvicorn's connection limits from `server.*` (the body cap and read deadline are the app's:
    `argus.api.edge.BodyGuard`). h11, so that the header limit and the framing checks (both
    Content-Length and Transfer-Encoding is a 400) hold whatever else is installed, guarded
    (`argus.api.connections`): headers due within `body_timeout_s`, and past twice
    `max_connections` (where requests already get 503) a new connection is closed at once."""
    from argus.api.connections import guarded_h11

    hard_cap = None if server.max_connections is None else 2 * server.max_connections
    return {
        "host": server.host,
        "port": server.port,
        "http": guarded_h11(server.body_timeout_s, hard_cap),
        "timeout_keep_alive": server.keep_alive_s,
        "limit_concurrency": server.max_connections,
        "backlog": server.backlog,
        "h11_max_incomplete_event_size": server.max_header_bytes,
    }


def with_overrides(config: ArgusConfig, args: argparse.Namespace) -> ArgusConfig:
    """The config with the command line's server and control settings applied, validated."""
    from argus.control.policy import policy_names

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    server = {key: value for key, value in (
        ("host", args.host), ("port", args.port), ("workers", args.workers),
        ("runtime", args.runtime), ("ray_address", args.ray_address),
    ) if value is not None}
    if server:
        config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    if args.policy is not None:
        import argus.baselines  # noqa: F401 - registers the baselines

        if args.policy not in policy_names():
            raise ValueError(f"--policy {args.policy}: unknown; known: "
                             f"{', '.join(policy_names())}")
        control = config.control.model_copy(update={"policy": args.policy})
        config = config.model_copy(update={"control": control})
    return config


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from argus.api import create_app
    from argus.cache.serving import build_cache_hook
    from argus.defaults import load_config
    from argus.runtime.dispatcher import build_runtime

    config = with_overrides(load_config(args.config), args)
    app = create_app(config, runtime=build_runtime(config, cache=build_cache_hook(config)))
    uvicorn.run(app, log_level=args.log_level, **uvicorn_options(config.server))
    return 0
