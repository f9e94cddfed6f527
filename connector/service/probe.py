"""``python -m connector.service.probe``: is the local ``segsync run`` healthy.

For container health checks (``HEALTHCHECK`` in ``deploy/Containerfile``):
it reads the same settings as ``segsync run`` (``$SEGSYNC_CONFIG`` or
``--config``, then the ``SEGSYNC_…`` environment), so the check follows
``service.port`` and ``service.host`` wherever they are set, instead of a
port written into the image. It asks ``/healthz`` (``--ready``: ``/readyz``)
and exits 0 on a 200; otherwise it prints one line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from connector.config import load_settings
from connector.errors import UserError

#: Addresses that mean "every interface": the probe asks the loopback one.
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def probe_url(host: str, port: int, path: str) -> str:
    """The URL to ask: the service's own address, or loopback when it listens everywhere."""
    target = "127.0.0.1" if host in _WILDCARDS else host
    if ":" in target and not target.startswith("["):
        target = f"[{target}]"  # an IPv6 literal
    return f"http://{target}:{port}{path}"


def main(argv: Sequence[str] | None = None) -> int:
    """Probe once; the exit status is the answer (0 healthy, 1 not)."""
    parser = argparse.ArgumentParser(
        prog="python -m connector.service.probe",
        description="Ask the local segsync service's /healthz (or /readyz) on its configured port.",
    )
    parser.add_argument("--config", default=None, help="settings file (default: $SEGSYNC_CONFIG)")
    parser.add_argument("--ready", action="store_true", help="ask /readyz instead of /healthz")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except UserError as exc:
        print(f"error: {exc.problems[0]}", file=sys.stderr)
        return 1
    service = settings.service
    if service.port == 0:
        print("error: service.port is 0 (a free port is picked at start): set one", file=sys.stderr)
        return 1
    url = probe_url(service.host, service.port, "/readyz" if args.ready else "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"error: {url}: no answer ({reason})", file=sys.stderr)
        return 1
    if status != 200:
        print(f"error: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
