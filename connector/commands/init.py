"""``segsync init [DIR]``: a ready-to-edit project from the templates shipped in the package.

It writes ``config.toml`` (the commented example with every setting),
``mappings/accounts.toml``, ``mappings/contacts.toml``, ``mappings/leads.toml`` (the shipped
definitions, which the config names relative to itself) and a ``.gitignore``
that keeps the state store and secrets out of version control; with
``--samples``, the bundled sample exports too. It refuses to overwrite an
existing file unless ``--force``: a project is someone's work.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from connector import templates
from connector.errors import Problem, UserError

# (template, path in the project, what it is, file mode). The config is private
# from the start: it is where inline secrets would go.
_FILES: tuple[tuple[Path, str, str, int], ...] = (
    (templates.CONFIG_EXAMPLE, "config.toml", "every setting, commented: fill in your CRMs", 0o600),
    (templates.ACCOUNTS, "mappings/accounts.toml", "account segments, scores and tiers", 0o644),
    (templates.CONTACTS, "mappings/contacts.toml", "contact personas; the account's tier", 0o644),
    (templates.LEADS, "mappings/leads.toml", "Salesforce lead segments, tiers, personas", 0o644),
    (templates.GITIGNORE, ".gitignore", "keeps the state store and secrets out of git", 0o644),
)


def project_files(samples: bool) -> list[tuple[Path, str, str, int]]:
    """What ``init`` writes: (template, relative path, description, mode)."""
    files = list(_FILES)
    if samples:
        for path in sorted(templates.SAMPLES.iterdir()):
            if path.suffix in (".csv", ".jsonl"):
                files.append((path, f"samples/{path.name}", "sample export", 0o644))
    return files


def _write(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(source.read_bytes())
    os.chmod(target, mode)  # also when --force replaced an existing file


@click.command("init")
@click.argument(
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option(
    "--samples",
    is_flag=True,
    help="Also write the bundled sample exports to samples/ (to try preview, explain, diff).",
)
def init(directory: Path, force: bool, samples: bool) -> None:
    """Write a ready-to-edit project to DIRECTORY (default: here).

    config.toml, mappings/accounts.toml, mappings/contacts.toml, mappings/leads.toml and a
    .gitignore; nothing is overwritten without --force.
    """
    files = project_files(samples)
    if not force:
        existing = [directory / rel for _, rel, _, _ in files if (directory / rel).exists()]
        if existing:
            raise UserError(
                Problem(str(path), "", "already exists; pass --force to overwrite it")
                for path in existing
            )
    for source, rel, _, mode in files:
        target = directory / rel
        try:
            _write(source, target, mode)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError([Problem(str(target), "", f"cannot write: {reason}")]) from None
    shown = [(rel, what) for _, rel, what, _ in _FILES]
    if samples:
        shown.append(("samples/", "sample exports of both CRMs, for preview, explain and diff"))
    width = max(len(rel) for rel, _ in shown)
    click.echo(f"Wrote a segsync project to {directory}{os.sep}")
    for rel, what in shown:
        click.echo(f"  {rel:<{width}}  {what}")
    config = directory / "config.toml"
    click.echo(
        "\nPaths in config.toml are relative to it, so it works from any directory.\n"
        "Next: put your Salesforce and HubSpot credentials in config.toml (or the\n"
        "environment), then\n"
        f"  segsync validate --config {config}\n"
        f"  segsync provision --config {config} --dry-run\n"
        f"  segsync sync --config {config} --dry-run"
    )
    if samples:
        click.echo(
            "Without a CRM, on the samples:\n"
            f"  segsync preview --mapping {directory / 'mappings' / 'accounts.toml'} "
            f"--crm salesforce --input {directory / 'samples' / 'salesforce_accounts.csv'}"
        )
