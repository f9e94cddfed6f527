"""Command-line options shared by several commands."""

from __future__ import annotations

import click

#: ``--format text|json``: readable output, or one JSON document on stdout.
FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json (one document on stdout) for scripts.",
)
