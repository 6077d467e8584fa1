"""`ambiview-cli models [--json]`: the installed engines and their checkpoints."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the installed engines and their checkpoints")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...models.registry import list_engines

    engines = list_engines()
    if args.json:
        print(json.dumps([{"name": e.name, "title": e.title, "dims": e.dims, "digest": e.digest,
                           "checkpoint": str(e.checkpoint) if e.checkpoint else None} for e in engines], indent=2))
        return 0
    for e in engines:
        where = e.checkpoint.name if e.checkpoint else "built in (pretrained weights only)"
        print(f"{e.name:28s} {e.dims}D  {e.digest or '-':12s}  {e.title}  [{where}]")
    return 0
