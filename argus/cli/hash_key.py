"""`argus hash-key`: the SHA-256 digest under which `server.api_keys` lists an API key.

The config holds digests, never keys: `argus hash-key KEY --tenant acme` prints the YAML entry
to paste under `server: api_keys:`. `-` reads the key from stdin (keeps it out of the shell
history); `--new` makes a fresh random key and prints it once, with its entry.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

KEY_PREFIX = "sk-argus-"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hash-key", help="print the server.api_keys digest of an API key", description=__doc__,
    )
    parser.add_argument("key", nargs="?", help="the API key ('-': read it from stdin)")
    parser.add_argument("--new", action="store_true", help="generate a new random key")
    parser.add_argument("--tenant", help="print a config entry for this tenant")
    parser.add_argument("--admin", action="store_true",
                        help="the entry's key may see every tenant's requests in /v1/cluster")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argus.api.auth import hash_key

    if args.new == (args.key is not None):
        raise ValueError("give either KEY (or '-') or --new")
    key = KEY_PREFIX + secrets.token_urlsafe(32) if args.new else args.key
    if key == "-":
        key = sys.stdin.readline().strip()
    if not key:
        raise ValueError("the key is empty")
    digest = hash_key(key)
    if args.new:
        print(f"key (give it to the client; it is not stored): {key}")
    if args.tenant is None:
        print(digest)
        return 0
    print("server:\n  api_keys:")
    tenant = json.dumps(args.tenant)  # a JSON string is a YAML string, quotes and all
    print(f'    "{digest}": {{tenant: {tenant}, admin: {str(args.admin).lower()}}}')
    return 0
