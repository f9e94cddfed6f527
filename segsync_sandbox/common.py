"""Plumbing shared by the local Salesforce and HubSpot sandboxes.

Each sandbox is a :class:`SandboxApp`: a route table plus a few hooks for what
differs between the two APIs (how a token is checked, what an error body looks
like). :class:`SandboxServer` serves one app over HTTP/1.1 with keep-alive (and
TLS for Salesforce) on a thread, so tests run it in-process on an ephemeral
port and the CLI runs it until interrupted.

Both sandboxes share :class:`Faults` (settable at runtime, also over
``/__admin/faults``) and :class:`RequestLog` (``/__admin/log``,
``/__admin/counters``), so tests and benchmarks inject the same fault classes
and count calls the same way. Admin requests bypass auth, faults and the log.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JsonObj = dict[str, Any]


@dataclass
class Request:
    """One HTTP request, parsed. Handlers annotate what it touched for the request log."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    kind: str = ""
    records: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    #: The request target as sent (path and query string), for length limits.
    target: str = ""

    def json(self) -> Any:
        """The body parsed as JSON (raise BadJson on malformed input)."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise BadJson(str(exc)) from None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query-string parameter."""
        values = self.query.get(name)
        return values[0] if values else default


class BadJson(ValueError):
    """The request body is not valid JSON."""


@dataclass
class Response:
    """One HTTP response."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response."""
        return cls(
            status,
            json.dumps(obj, separators=(",", ":")).encode(),
            {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
        )


class HttpError(Exception):
    """Raise from a handler to answer with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass
class Faults:
    """Faults to inject; every share is a probability in [0, 1] drawn per request.

    ``lock_ids`` answer UNABLE_TO_LOCK_ROW (Salesforce) or a 409 per-input
    error (HubSpot) on writes, ``lock_failures`` times per id before the lock
    clears (0 = forever). ``validation_failures`` maps a record id to the
    message of a per-record validation error. ``session_expiry_after`` expires
    every issued token after that many authenticated calls.
    ``lost_answer_rate`` serves the request, then drops the connection
    without answering: the client cannot tell whether the call took effect.
    ``lost_answers`` does the same to the next N requests of a kind, by the
    request log's kind (``{"bulk.ingest.create": 1}``): a test's exact aim.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    rate_limit_rate: float = 0.0
    rate_limit_next: int = 0
    retry_after: float | None = None
    lock_ids: set[str] = field(default_factory=set)
    lock_failures: int = 1
    validation_failures: dict[str, str] = field(default_factory=dict)
    session_expiry_after: int | None = None
    lost_answer_rate: float = 0.0
    lost_answers: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def to_json(self) -> JsonObj:
        """A JSON-ready view (sets as sorted lists)."""
        out = dataclasses.asdict(self)
        out["lock_ids"] = sorted(self.lock_ids)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a JSON object; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values = dict(data)
        if "lock_ids" in values:
            values["lock_ids"] = set(values["lock_ids"])
        return cls(**values)


class FaultState:
    """The faults in force, with the seeded randomness and counters they consume."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults = Faults()
        self._rng = random.Random(0)
        self._lock_hits: Counter[str] = Counter()

    def set(self, faults: Faults) -> None:
        """Replace the faults in force (resets lock counters and the random stream)."""
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._lock_hits.clear()

    def update(self, **changes: Any) -> None:
        """Change some fault settings, keeping the others."""
        self.set(dataclasses.replace(self.faults, **changes))

    def delay(self) -> float:
        """Seconds of latency to add to this request."""
        f = self.faults
        if not f.latency_ms and not f.jitter_ms:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0
        return (f.latency_ms + jitter) / 1000.0

    def draw(self) -> str | None:
        """Which request-level fault hits this request: 'timeout', 'rate_limit', 'error' or None."""
        f = self.faults
        with self._lock:
            if f.rate_limit_next > 0:
                f.rate_limit_next -= 1
                return "rate_limit"
            roll = self._rng.random()
        if roll < f.timeout_rate:
            return "timeout"
        roll -= f.timeout_rate
        if roll < f.rate_limit_rate:
            return "rate_limit"
        roll -= f.rate_limit_rate
        if roll < f.error_rate:
            return "error"
        return None

    def lose_answer(self, kind: str = "") -> bool:
        """Whether to drop the connection after serving this request (its effect stays)."""
        with self._lock:
            left = self.faults.lost_answers.get(kind, 0)
            if left > 0:
                self.faults.lost_answers[kind] = left - 1
                return True
        rate = self.faults.lost_answer_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def record_fault(self, record_id: str) -> tuple[str, str] | None:
        """A per-record write failure for this id: ('lock', msg), ('validation', msg) or None."""
        f = self.faults
        if record_id in f.validation_failures:
            return ("validation", f.validation_failures[record_id])
        if record_id in f.lock_ids:
            with self._lock:
                self._lock_hits[record_id] += 1
                hits = self._lock_hits[record_id]
            if f.lock_failures == 0 or hits <= f.lock_failures:
                return ("lock", "unable to obtain exclusive access to this record")
        return None


@dataclass(frozen=True)
class LogEntry:
    """One served request, as the request log keeps it."""

    seq: int
    time: float
    method: str
    path: str
    status: int
    kind: str
    records: tuple[str, ...]
    fields: tuple[str, ...]

    def to_json(self) -> JsonObj:
        """A JSON-ready view."""
        return dataclasses.asdict(self)


class RequestLog:
    """Every non-admin request: method, path, status, kind, records touched, fields written."""

    def __init__(self, keep: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []
        self._seq = 0
        self._keep = keep
        self.counters: Counter[str] = Counter()

    def add(self, request: Request, status: int) -> None:
        """Record a served request."""
        with self._lock:
            self._seq += 1
            entry = LogEntry(
                self._seq,
                time.time(),
                request.method,
                request.path,
                status,
                request.kind,
                tuple(request.records),
                tuple(sorted(request.fields)),
            )
            self._entries.append(entry)
            if len(self._entries) > self._keep:
                del self._entries[: len(self._entries) - self._keep]
            self.counters["requests"] += 1
            self.counters[f"status:{status}"] += 1
            if request.kind:
                self.counters[f"kind:{request.kind}"] += 1

    def entries(self, since: int = 0) -> list[LogEntry]:
        """Entries with a sequence number above ``since``."""
        with self._lock:
            return [e for e in self._entries if e.seq > since]

    def clear(self) -> None:
        """Forget every entry and counter."""
        with self._lock:
            self._entries.clear()
            self.counters.clear()


class SandboxApp:
    """A sandboxed API: routes plus the hooks where Salesforce and HubSpot differ."""

    name = "sandbox"

    def __init__(self) -> None:
        self.faults = FaultState()
        self.log = RequestLog()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.before_serving: list[Callable[[Request], None]] = []
        """A test's hooks, run with each API request (admin ones aside) before it is
        served: they act as the CRM's other users would meanwhile (move a held
        clock, write a record), at an exact point of a client's page walk."""

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a full-match path regex."""
        self._routes.append((method, re.compile(pattern), handler))

    # Hooks -------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        """Return an error response when the request is not authorized, else None."""
        return None

    def fault_response(self, fault: str, request: Request) -> Response:
        """The API's own answer to an injected 'rate_limit' or 'error' fault."""
        return Response.json(503, {"message": "Service Unavailable"})

    def error_response(self, status: int, message: str, code: str) -> Response:
        """The API's own error body for routing errors (404, 405, bad JSON)."""
        return Response.json(status, {"message": message, "errorCode": code})

    def decorate(self, request: Request, response: Response) -> None:
        """Add headers every response carries (limit info, rate-limit headers)."""

    def is_open(self, request: Request) -> bool:
        """True for routes served without authentication (the OAuth token endpoint)."""
        return False

    def now(self) -> float:
        """The server's time, seconds since the epoch: what each answer's ``Date`` says."""
        return time.time()

    # Dispatch ----------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """Serve one request; None means 'drop the connection' (an injected timeout)."""
        if request.path.startswith("/__admin/"):
            return self._admin(request)
        delay = self.faults.delay()
        if delay:
            time.sleep(delay)
        for hook in list(self.before_serving):
            hook(request)
        response = self._dispatch(request)
        if response is not None:
            self.decorate(request, response)
            self.log.add(request, response.status)
        else:
            self.log.add(request, 0)
        return response

    def _dispatch(self, request: Request) -> Response | None:
        matches = [
            (method, m, h)
            for method, pattern, h in self._routes
            if (m := pattern.fullmatch(request.path))
        ]
        if not matches:
            return self.error_response(404, f"no such resource: {request.path}", "NOT_FOUND")
        chosen = next(((m, h) for method, m, h in matches if method == request.method), None)
        if chosen is None:
            return self.error_response(
                405, f"HTTP method {request.method} not allowed", "METHOD_NOT_ALLOWED"
            )
        match, handler = chosen
        if not self.is_open(request):
            denied = self.authenticate(request)
            if denied is not None:
                return denied
            fault = self.faults.draw()
            if fault == "timeout":
                time.sleep(self.faults.faults.timeout_seconds)
                return None
            if fault is not None:
                return self.fault_response(fault, request)
        try:
            response = handler(request, match)
        except HttpError as exc:
            response = exc.response
        except BadJson as exc:
            response = self.error_response(400, f"malformed JSON: {exc}", "JSON_PARSER_ERROR")
        if not self.is_open(request) and self.faults.lose_answer(request.kind or ""):
            return None
        return response

    def _admin(self, request: Request) -> Response:
        op = request.path.removeprefix("/__admin/").rstrip("/")
        if op == "faults" and request.method == "GET":
            return Response.json(200, self.faults.faults.to_json())
        if op == "faults" and request.method in ("PUT", "POST"):
            try:
                self.faults.set(Faults.from_json(request.json() or {}))
            except (ValueError, TypeError) as exc:
                return Response.json(400, {"message": str(exc)})
            return Response.json(200, self.faults.faults.to_json())
        if op == "log" and request.method == "GET":
            since = int(request.arg("since", "0") or 0)
            return Response.json(200, [e.to_json() for e in self.log.entries(since)])
        if op == "counters" and request.method == "GET":
            return Response.json(200, dict(self.log.counters))
        if op == "reset" and request.method == "POST":
            self.log.clear()
            self.faults.set(Faults())
            return Response.json(200, {"reset": True})
        return Response.json(404, {"message": f"no admin operation {op!r}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            target=self.path,
        )
        response = self.server.app.handle(request)
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the app's clock (a sandbox's injectable one), whole seconds."""
        return super().date_time_string(self.server.app.now() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; the RequestLog keeps it."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response (a killed process, a timed-out read,
        # a TLS handshake abandoned) is normal traffic for a server, not a bug in
        # it: keep it out of the test output. Anything else is still printed.
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """Serve a SandboxApp on a background thread (``port=0`` picks a free port)."""

    def __init__(
        self,
        app: SandboxApp,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self._httpd = _Server((host, port), app)
        if ssl_context is not None:
            # The handshake happens lazily in the handler thread, so one slow client
            # cannot stall the accept loop.
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if ssl_context is not None else "http"
        address = self._httpd.server_address
        self.host = str(address[0] if isinstance(address[0], str) else address[0].decode())
        self.port = int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, poll_interval: float = 0.02) -> SandboxServer:
        """Start serving on a daemon thread.

        ``poll_interval`` bounds how long :meth:`stop` waits; the standard
        library's half second would dominate a suite that starts a server per test.
        """
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name=f"{self.app.name}-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chunked(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Split an iterable into lists of at most ``size`` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
