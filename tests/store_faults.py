"""Store faults over the real wire, for the tests of store steps tried again (PostgreSQL).

- :class:`Lines` collects what the sync logs (a test waits for "store step … failed").
- :func:`schema_of` names a test's PostgreSQL schema (to lock its tables from a second session).
- :func:`companies_written`, :func:`contacts_written` and :func:`ledger_rows` count what
  reached the CRM and the ledger.
- :func:`expire_lease` ends a job's lease as if its holder had stopped renewing it.
- :class:`CommitCut` is a TCP relay between the store and PostgreSQL that, once
  armed, lets a transaction's COMMIT land on the server and then drops the
  connection before its answer reaches the client: the client sees the
  connection lost, the database holds the commit (a network failure at the
  worst moment). Nothing in the client or the store is patched.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from connector.store.schema import job_leases
from connector.store.store import Store
from segsync_sandbox.hubspot import HubSpotSandbox


def expire_lease(store: Store, job: str) -> None:
    """Expire ``job``'s lease, as when its holder stopped renewing it: the next claim steals it."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(job_leases)
            .where(job_leases.c.job == job)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def companies_written(sandbox: HubSpotSandbox) -> Counter[str]:
    """Company id → how many times a batch update wrote it."""
    return _written(sandbox, "companies")


def contacts_written(sandbox: HubSpotSandbox) -> Counter[str]:
    """Contact id → how many times a batch update wrote it."""
    return _written(sandbox, "contacts")


def _written(sandbox: HubSpotSandbox, kind: str) -> Counter[str]:
    return Counter(
        record
        for e in sandbox.app.log.entries()
        if e.kind == "batch.update" and f"/objects/{kind}/" in e.path
        for record in e.records
    )


def ledger_rows(store: Store, run_id: int | None = None) -> Counter[tuple[str, str]]:
    """(record, field) → how many ledger rows the HubSpot account runs (or one run) left."""
    rows = store.history(None, None, connection="hs", object="account", run_id=run_id)
    return Counter((t.record_id, t.field) for t in rows)


class Lines(logging.Handler):
    """The messages logged to a logger, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def having(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]


@contextmanager
def log_lines(*names: str) -> Iterator[Lines]:
    """What the loggers ``names`` log at INFO and above while the block runs."""
    handler = Lines()
    loggers = [logging.getLogger(n) for n in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def schema_of(url: str) -> str:
    """The schema a test's store URL puts first on the search path."""
    options = str(sa.make_url(url).query["options"])
    return options.split("search_path=", 1)[1]


class CommitCut:
    """A relay to PostgreSQL that loses the answer of one COMMIT, once armed.

    Armed with a piece of SQL (``arm(b"INSERT INTO transitions")``): the first
    connection that sends it has its next ``COMMIT`` relayed to the server,
    and when the server's ``CommandComplete`` for it comes back, both sockets
    are closed instead of passing it on. Then it disarms; every other byte
    passes unchanged. The client must not encrypt (``sslmode=disable``,
    ``gssencmode=disable``: :meth:`url`), so the relay reads the messages.
    ``listen``: the local port it listens on (0: any free one).
    """

    def __init__(self, host: str, port: int, listen: int = 0) -> None:
        self._target = (host, port)
        self._server = socket.create_server(("127.0.0.1", listen))
        self.port = self._server.getsockname()[1]
        self._guard = threading.Lock()
        self._armed: bytes | None = None
        self.cut = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, name="commit-cut", daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (a test's store URL) through this relay, unencrypted."""
        parsed = sa.make_url(url)
        query = {**parsed.query, "sslmode": "disable", "gssencmode": "disable"}
        return parsed.set(host="127.0.0.1", port=self.port, query=query).render_as_string(
            hide_password=False
        )

    def arm(self, statement: bytes) -> None:
        """Lose the answer of the COMMIT of the next transaction that sends ``statement``."""
        with self._guard:
            self._armed = statement
        self.cut.clear()

    def close(self) -> None:
        self._server.close()
        for sock in list(self._open):
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._open += [client, server]
            # The connection's state, shared by its two directions.
            state = {"marked": False, "commit": False}
            threading.Thread(
                target=self._upstream, args=(client, server, state), daemon=True
            ).start()
            threading.Thread(
                target=self._downstream, args=(server, client, state), daemon=True
            ).start()

    def _upstream(
        self, client: socket.socket, server: socket.socket, state: dict[str, bool]
    ) -> None:
        """Client to server: notes the armed statement and the COMMIT after it."""
        tail = b""
        while (data := _recv(client)) is not None:
            seen = tail + data
            with self._guard:
                if self._armed is not None and not state["marked"] and self._armed in seen:
                    state["marked"] = True
                    self._armed = None
                if state["marked"] and b"COMMIT" in seen:
                    state["commit"] = True
            tail = seen[-64:]
            try:
                server.sendall(data)
            except OSError:
                break
        _close(server)

    def _downstream(
        self, server: socket.socket, client: socket.socket, state: dict[str, bool]
    ) -> None:
        """Server to client, message by message: cuts after the marked COMMIT's completion."""
        buffer = b""
        while (data := _recv(server)) is not None:
            buffer += data
            out = b""
            while len(buffer) >= 5:
                kind, length = buffer[:1], struct.unpack("!I", buffer[1:5])[0]
                if len(buffer) < 1 + length:
                    break
                message, buffer = buffer[: 1 + length], buffer[1 + length :]
                with self._guard:
                    cut = state["commit"] and kind == b"C" and message[5:].startswith(b"COMMIT")
                if cut:
                    # Landed on the server; the client hears only what came before.
                    try:
                        client.sendall(out)
                    finally:
                        _close(client)
                        _close(server)
                        self.cut.set()
                    return
                out += message
            try:
                client.sendall(out)
            except OSError:
                break
        _close(client)


def _recv(sock: socket.socket) -> bytes | None:
    try:
        data = sock.recv(65536)
    except OSError:
        return None
    return data or None


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
