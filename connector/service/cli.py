"""``segsync run``: the long-running service (scheduler, health, metrics)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from connector.config import load_settings
from connector.errors import SegsyncError, UserError
from connector.service.app import Service
from connector.service.logs import collect_secrets, configure_logging

log = logging.getLogger("segsync.service")

#: ``--once`` outcomes that count as success for the exit status.
_OK = frozenset({"succeeded", "skipped:locked"})


@click.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of /healthz, /readyz and /metrics (default: service.port; 0 picks a free one).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run every configured job once, in order, and exit (no scheduler, no HTTP).",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless stderr is a terminal.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail (lock skips, probes).")
def run(
    config_file: Path | None, port: int | None, once: bool, log_format: str, verbose: bool
) -> None:
    """Run the service: every job of [service.jobs] on its schedule, until SIGTERM or SIGINT.

    A job runs only on the replica holding its lock (PostgreSQL advisory lock
    with a PostgreSQL store), so several replicas may run against one store.
    On SIGTERM / SIGINT the service stops scheduling, lets the batch in
    flight finish and be recorded, and exits 0 within
    service.shutdown_timeout_seconds (a second signal exits at once).

    With --once: exit status 0 when every job succeeded (or was running on
    another replica), 1 otherwise. Whether or not --once: 2 for a configuration
    or mapping problem, 3 when the state store cannot be used at start.
    """
    settings = load_settings(config_file)
    configure_logging(
        collect_secrets(settings),
        level=logging.DEBUG if verbose else logging.INFO,
        json_lines=None if log_format == "auto" else log_format == "json",
    )
    service = Service(settings, port=port)
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only flags here: logging from a signal handler can deadlock on the
        # handler's lock; the main loop logs once it wakes.
        received.append(signum)
        if len(received) > 1:
            os._exit(1)
        service.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if once:
            _run_once(service)
            return
        try:
            service.start()
        except UserError:
            raise
        except SegsyncError as exc:
            # The store or a CRM unreachable at start: one line, no traceback.
            log.error("segsync service cannot start: %s", exc)
            sys.exit(exc.exit_code)
        # A timed wait, so the main thread wakes to run the signal handler promptly.
        while not service.wait(1.0):
            pass
        if received:
            log.info("%s received: stopping", signal.Signals(received[0]).name)
        clean = service.stop()
        log.info("segsync service stopped" + ("" if clean else " (jobs still running)"))
        if not clean:
            logging.shutdown()
            # Worker threads still run a job: a normal exit would wait for them.
            os._exit(1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_once(service: Service) -> None:
    try:
        service.open()
    except UserError:
        raise
    except SegsyncError as exc:
        log.error("segsync cannot start: %s", exc)
        sys.exit(exc.exit_code)
    try:
        outcomes = service.run_once()
    finally:
        service.close()
    if any(o not in _OK for o in outcomes):
        sys.exit(1)
