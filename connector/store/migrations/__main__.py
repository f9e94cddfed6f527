"""Maintainer commands for the store's migrations (no ``alembic.ini`` needed).

::

    python -m connector.store.migrations revision -m "add a column"
    python -m connector.store.migrations revision -m "add a column" --autogenerate --url sqlite:///x.db
    python -m connector.store.migrations upgrade --url postgresql+psycopg://…
    python -m connector.store.migrations current --url sqlite:///segsync.db
"""

from __future__ import annotations

import argparse
import sys

from alembic import command
from alembic.script import ScriptDirectory

from connector.store.store import DEFAULT_URL, Store, alembic_config


def _next_id() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    """Run one maintainer command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m connector.store.migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write a new, numbered migration script")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--autogenerate", action="store_true")
    revision.add_argument("--url", default=None, help="database to compare (with --autogenerate)")
    for name in ("upgrade", "current"):
        sub.add_parser(name).add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args(argv)

    if args.command == "revision":
        config = alembic_config()
        # Numbered files that are valid module names: v0002_add_a_column.py.
        config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
        if not args.autogenerate:
            command.revision(config, message=args.message, rev_id=_next_id())
            return 0
        if args.url is None:
            parser.error("--autogenerate needs --url of a database at head")
        with Store.open(args.url, migrate=False) as store, store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.revision(config, message=args.message, rev_id=_next_id(), autogenerate=True)
        return 0
    with Store.open(args.url, migrate=args.command == "upgrade") as store:
        print(f"{store.url}: revision {store.revision()} (head {Store.head()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
