"""The ``segsync`` command.

Each command lives in the module that owns its work (``connector.commands.*``,
``segsync_sandbox.cli``); this module only assembles them and is the one place
a :class:`~connector.errors.SegsyncError` becomes output: one ``error:`` line
(one per problem for a :class:`~connector.errors.UserError`) on stderr and
the error's exit status (:data:`connector.errors.EXIT_CODES`), never a
traceback. ``NO_COLOR`` (https://no-color.org) turns colour off everywhere:
rich honours it by itself, click through the context's ``color`` setting.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from connector import __version__
from connector.errors import EXIT_USER, SegsyncError, UserError

# (module, attribute) of every command group or command, in help order.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("connector.commands.init", "init"),
    ("connector.commands.offline", "validate"),
    ("connector.commands.offline", "preview"),
    ("connector.commands.offline", "explain"),
    ("connector.commands.offline", "diff"),
    ("connector.commands.crm", "sync"),
    ("connector.commands.crm", "provision"),
    ("connector.commands.crm", "status"),
    ("connector.commands.crm", "history"),
    ("connector.commands.crm", "errors"),
    ("connector.commands.outcomes", "outcomes"),
    ("connector.commands.parity", "parity"),
    ("connector.commands.rollback", "rollback"),
    ("connector.service.cli", "run"),
    ("segsync_sandbox.cli", "sandbox"),
    ("connector.commands.demo", "demo"),
)

# Modules that need the optional ``sandbox`` extra (the local CRMs and their
# test certificate authority). Without it their commands stay listed and say
# how to install it, instead of breaking every other command's import.
_SANDBOX_MODULES = frozenset({"segsync_sandbox.cli", "connector.commands.demo"})
SANDBOX_INSTALL = "pip install 'segsync[sandbox]'"


def no_color() -> bool:
    """True when ``NO_COLOR`` is set to anything but the empty string (no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def report(exc: SegsyncError) -> int:
    """Print ``exc`` as ``error:`` lines on stderr; return its exit status."""
    if isinstance(exc, UserError):
        for problem in exc.problems:
            click.secho(f"error: {problem}", fg="red", err=True)
        count = len(exc.problems)
        if count > 1:
            click.echo(f"{count} problems found.", err=True)
    else:
        # One line: a driver's message may span several; the first says what happened.
        text = " ".join(str(exc).split()) or type(exc).__name__
        click.secho(f"error: {text}", fg="red", err=True)
    return exc.exit_code


class _Group(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if no_color():
            extra.setdefault("color", False)
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SegsyncError as exc:
            ctx.exit(report(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segsync")
def cli() -> None:
    """segsync: one shared segment and tier definition, written back into your CRMs."""


def _needs_sandbox(name: str, missing: str) -> click.Command:
    """A stand-in for ``name`` when the sandbox extra is not installed."""

    @click.command(
        name,
        help=f"(needs the sandbox extra: {SANDBOX_INSTALL})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.pass_context
    def stand_in(ctx: click.Context) -> None:
        click.secho(
            f"error: segsync {name} runs local CRM sandboxes, an optional part that is not "
            f"installed (no module {missing!r}): {SANDBOX_INSTALL}",
            fg="red",
            err=True,
        )
        ctx.exit(EXIT_USER)

    return stand_in


def _command(module: str, attr: str) -> click.Command:
    try:
        command: click.Command = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module not in _SANDBOX_MODULES or missing.partition(".")[0] == "connector":
            raise
        return _needs_sandbox(attr, missing)
    return command


for _module, _attr in _COMMANDS:
    cli.add_command(_command(_module, _attr))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="segsync")
