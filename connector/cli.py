"""The ``segsync`` command.

Each command lives in the module that owns its work (``connector.commands.*``,
``segsync_sandbox.cli``); this module only assembles them and turns user
errors into a readable list and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from connector import __version__
from connector.errors import UserError

# (module, attribute) of every command group or command, in help order.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("connector.commands.offline", "validate"),
    ("connector.commands.offline", "preview"),
    ("connector.commands.offline", "explain"),
    ("connector.commands.offline", "diff"),
    ("connector.commands.crm", "sync"),
    ("connector.commands.crm", "provision"),
    ("connector.commands.crm", "status"),
    ("connector.commands.crm", "history"),
    ("connector.commands.crm", "errors"),
    ("connector.service.cli", "run"),
    ("segsync_sandbox.cli", "sandbox"),
    ("connector.commands.demo", "demo"),
)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            for problem in exc.problems:
                click.secho(f"error: {problem}", fg="red", err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found.", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segsync")
def cli() -> None:
    """segsync: one shared segment and tier definition, written back into your CRMs."""


for _module, _attr in _COMMANDS:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="segsync")
