"""``segsync sandbox``: run the local Salesforce and HubSpot sandboxes until interrupted.

The command starts both sandboxes on one synthetic dataset, prints where they
listen and the credentials to use (``--format json``: one JSON object on the
first line of stdout, for scripts), optionally writes a connector config
pointing at both (``--config-out``), and serves until SIGINT or SIGTERM. With
``--data DIR`` the state is loaded from DIR when it holds one and saved there
periodically and on stop, so a demo survives a restart.

Run it as ``segsync sandbox`` or ``python -m segsync_sandbox.cli``.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.markup import escape

from segsync_sandbox.data import REFERENCE
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _print_text(console: Console, sandboxes: Sandboxes, config_out: Path | None) -> None:
    info = sandboxes.info()
    dataset = sandboxes.dataset
    sf, hs = info["salesforce"], info["hubspot"]
    origin = f"restored from {sandboxes.data_dir}" if dataset.restored else "generated"
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "[bold cyan]Salesforce[/]",
            [
                ("instance URL", sf["instance_url"]),
                ("token URL", sf["token_url"]),
                ("client id", sf["client_id"]),
                ("client secret", sf["client_secret"]),
                ("access token", sf["access_token"]),
                ("CA file", sf["ca_file"]),
            ],
        ),
        (
            "[bold magenta]HubSpot[/]",
            [("base URL", hs["base_url"]), ("access token", hs["access_token"])],
        ),
        (
            "[bold green]Data[/]",
            [
                ("dataset", f"seed {dataset.seed}, {origin}"),
                (
                    "Salesforce",
                    f"{dataset.salesforce_accounts:,} accounts, "
                    f"{dataset.salesforce_contacts:,} contacts, "
                    f"{dataset.salesforce_leads:,} leads, "
                    f"{dataset.salesforce_opportunities:,} opportunities",
                ),
                (
                    "HubSpot",
                    f"{dataset.hubspot_companies:,} companies, "
                    f"{dataset.hubspot_contacts:,} contacts, "
                    f"{dataset.hubspot_deals:,} deals",
                ),
            ]
            + ([("saved to", str(sandboxes.data_dir))] if sandboxes.data_dir else [])
            + ([("config", str(config_out))] if config_out else []),
        ),
    ]
    for title, rows in sections:
        console.print(title)
        for label, value in rows:
            # soft_wrap: secrets stay on one line, so they can be copied.
            console.print(f"  {label:<14}", escape(value), style=None, soft_wrap=True)
    console.print("Serving. Press Ctrl+C to stop.")


@click.command("sandbox")
@click.option(
    "--salesforce-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Salesforce (HTTPS) port; 0 picks a free one.",
)
@click.option(
    "--hubspot-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="HubSpot (HTTP) port; 0 picks a free one.",
)
@click.option(
    "--accounts",
    type=click.IntRange(0),
    default=2000,
    show_default=True,
    help="Accounts / companies to generate.",
)
@click.option(
    "--contacts-per-account",
    type=click.IntRange(0, 15),
    default=3,
    show_default=True,
    help="Average contacts per account.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Dataset seed.")
@click.option(
    "--reference-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=REFERENCE.strftime("%Y-%m-%d"),
    show_default=True,
    help="The day the dataset's activity dates are spread back from (UTC midnight).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Load the state from this directory when it holds one; save it there.",
)
@click.option(
    "--config-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a connector config pointing at both sandboxes to this file.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object with the URLs and credentials on the first line.",
)
@click.option(
    "--save-interval",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Seconds between saves with --data (the state is also saved on stop).",
)
def sandbox(
    salesforce_port: int,
    hubspot_port: int,
    accounts: int,
    contacts_per_account: int,
    seed: int,
    reference_date: dt.datetime,
    data_dir: Path | None,
    config_out: Path | None,
    output_format: str,
    save_interval: float,
) -> None:
    """Run a local Salesforce and HubSpot on one synthetic dataset until interrupted."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Install the handlers before starting, so a signal during the load still
    # ends in a clean stop rather than a KeyboardInterrupt traceback.
    previous = {sig: signal.signal(sig, _on_signal) for sig in _STOP_SIGNALS}
    err = Console(stderr=True)
    try:
        try:
            sandboxes = start_sandboxes(
                accounts=accounts,
                contacts_per_account=contacts_per_account,
                seed=seed,
                reference=reference_date.replace(tzinfo=dt.UTC),
                data_dir=data_dir,
                salesforce_port=salesforce_port,
                hubspot_port=hubspot_port,
                save_interval=save_interval,
            )
        except OSError as exc:
            raise click.ClickException(f"cannot start the sandboxes: {exc}") from None
        try:
            if config_out is not None:
                try:
                    sandboxes.write_config(config_out, deals=True)
                except OSError as exc:
                    raise click.ClickException(f"cannot write {config_out}: {exc}") from None
            if output_format == "json":
                sys.stdout.write(json.dumps(sandboxes.info(), separators=(",", ":")) + "\n")
                sys.stdout.flush()
            else:
                _print_text(Console(), sandboxes, config_out)
            asked = (accounts, seed, reference_date.date())
            dataset = sandboxes.dataset
            if dataset.restored and asked != (
                dataset.accounts,
                dataset.seed,
                dataset.reference.date(),
            ):
                err.print(
                    f"note: restored the saved state from {data_dir} "
                    f"({dataset.accounts:,} accounts, seed {dataset.seed}); "
                    "--accounts, --seed and --reference-date apply to a new data directory only.",
                    markup=False,
                )
            # Wake up now and then: a signal sets the event from the main thread.
            while not stop.wait(0.5):
                pass
        finally:
            sandboxes.stop()
        if output_format == "text":
            saved = f"; state saved to {data_dir}" if data_dir is not None else ""
            err.print(f"Stopped{saved}.", markup=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sandbox(prog_name="segsync sandbox")
