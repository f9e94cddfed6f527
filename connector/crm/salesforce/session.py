"""One org's connection: HTTP sessions, the token, per-thread clients and the call wrapper.

- The client is built from instance URL + access token (:mod:`.auth`) on a
  ``requests.Session`` that trusts ``ca_file``, ignores the environment's CA
  settings, has a default timeout and never retries (the one
  :class:`~connector.crm.retry.RetryPolicy` owns retrying).
- Every HTTP response is counted (token requests, retries, Bulk polls and
  SOAP included); a request that got no answer is counted by hand.
- The token comes from the state store's cache when a process before this
  one left a usable one (:class:`.cache.TokenCache`: no token request), else
  from the token endpoint, and is kept there for the next process.
- Every SDK call goes through :meth:`SalesforceSession.call`: the daily budget
  is checked first, a 401 ``INVALID_SESSION_ID`` re-authenticates once (a
  fresh token, also replacing the cached one) and is repeated, errors are
  translated by :func:`.errors.translate`, and
  :class:`~connector.errors.RetriableError` is retried. Usage is read back from
  ``Sforce-Limit-Info`` (``sf.api_usage``) into the :class:`DailyBudget`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce

from connector.config import SalesforceConnection
from connector.crm.cache import Cache
from connector.crm.health import Health
from connector.crm.limits import DailyBudget
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce.auth import Token, TokenSource
from connector.crm.salesforce.cache import TokenCache
from connector.crm.salesforce.errors import is_expired, translate
from connector.crm.tally import count_call
from connector.errors import CrmAccessError, CrmUnreachable, FatalSyncError, SegsyncError

log = logging.getLogger(__name__)

T = TypeVar("T")

NEVER = datetime.min.replace(tzinfo=UTC)
"""The read time of an answer that carried no ``Date``: no second counts as closed."""


def answered_at(response: requests.Response) -> datetime:
    """The earliest the org's clock can have shown when ``response``'s request was served.

    The answer's ``Date`` (whole seconds, rounded down) less the time the
    request took, measured here (``elapsed``): whatever the request read, it
    read after it was sent, and the server stamped the ``Date`` before this
    host had the answer. No clock of this host is compared with the org's, so
    no skew enters. :data:`NEVER` when the answer carries no readable ``Date``.
    """
    text = response.headers.get("Date")
    if not text:
        return NEVER
    try:
        served = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return NEVER
    if served.tzinfo is None:
        served = served.replace(tzinfo=UTC)
    return served.astimezone(UTC) - response.elapsed


class _TimeoutAdapter(HTTPAdapter):
    """An adapter with a default timeout and no retries (the RetryPolicy owns retrying)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send with the default timeout unless the caller gave one."""
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


@dataclass
class Client:
    """One thread's simple-salesforce client, built for one session generation."""

    sf: Salesforce
    generation: int
    types: dict[str, Any] = field(default_factory=dict)
    md: Any = None

    def sobject(self, name: str) -> Any:
        """The SFType for ``name``, kept: ``sf.Account`` builds a new one at each access."""
        if name not in self.types:
            self.types[name] = getattr(self.sf, name)
        return self.types[name]

    def bulk(self, name: str) -> Any:
        """The Bulk 2.0 type for ``name`` (built fresh: it captures the session id)."""
        return getattr(self.sf.bulk2, name)


class SalesforceSession:
    """The authenticated, counted, budgeted and retried way to one org.

    Args:
        connection: the connection's name in the config (for messages).
        settings: the connection's settings.
        retry: the retry policy for every call.
        cache: where tokens outlive the process (the state store); None: nowhere.

    """

    def __init__(
        self,
        connection: str,
        settings: SalesforceConnection,
        retry: RetryPolicy,
        cache: Cache | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.retry = retry
        self.budget = DailyBudget(share=settings.daily_api_share)
        settings.verify(connection)  # a missing ca_file fails here, as a ConfigError
        self._tokens = TokenSource(connection, settings)
        self._calls = 0
        self._count_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._token: Token | None = None
        self._generation = 0
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.health = Health()
        self._token_cache = TokenCache(cache, connection, settings)
        #: Whether the current token's successful use is in the cache already.
        self._token_noted = True
        kept = self._token_cache.load()
        if kept is not None:
            # A token a process before this one used: no token request until it is refused.
            self._token, used_at = kept
            self._generation = 1
            self._token_noted = False
            self.health.ok(used_at)

    @property
    def user_id(self) -> str | None:
        """The integration user's id, once logged in with an OAuth flow (None otherwise)."""
        return self._token.user_id if self._token else None

    @property
    def instance_url(self) -> str | None:
        """The instance the current token is for (the configured one before login)."""
        return self._token.instance_url if self._token else self.settings.instance_url

    @property
    def identity_url(self) -> str | None:
        """The identity URL of the current token's user (None before login or for a session id)."""
        return self._token.identity_url if self._token else None

    @property
    def api_calls(self) -> int:
        """HTTP calls made so far: token requests, retries, bulk polls and SOAP included."""
        return self._calls

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        with self._count_lock:
            self._calls += 1
        count_call()  # hooks run in the thread (and context) that sent the request
        self._local.answered = answered_at(response)
        return response

    def answered_at(self) -> datetime:
        """:func:`answered_at` of the calling thread's last answer (:data:`NEVER`: none yet).

        Read right after a call: the answer is that call's (hooks run in the
        thread that sent the request; a retried call's last answer is its own).
        """
        answered: datetime = getattr(self._local, "answered", NEVER)
        return answered

    def count_unanswered(self) -> None:
        """Count a request that got no response (the response hook never saw it)."""
        with self._count_lock:
            self._calls += 1
        count_call()

    def http(self) -> requests.Session:
        """The calling thread's HTTP session: trusts ``ca_file``, ignores the environment."""
        session: requests.Session | None = getattr(self._local, "http", None)
        if session is None:
            session = requests.Session()
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would silently override `verify` otherwise.
            session.trust_env = False
            session.verify = self.settings.verify(self.connection)
            adapter = _TimeoutAdapter(self.settings.timeout_seconds)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.hooks["response"].append(self._count)
            self._local.http = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def authenticate(self) -> None:
        """Obtain a session now (else the first call does); FatalSyncError when refused.

        A refusal, or a login endpoint that does not answer, is recorded in
        :attr:`health` as a failed call would be (``/readyz`` reads it).
        """
        with self._auth_lock:
            if self._token is None:
                self._login()

    def _login(self) -> None:
        """Fetch a token (caller holds the auth lock), cache it, start a new client generation."""
        http = self.http()

        def fetch() -> Token:
            return self._tokens.fetch(http, on_no_response=self.count_unanswered)

        try:
            self._token = self.retry.call(fetch)
        except (CrmAccessError, CrmUnreachable) as exc:
            # Logins outside call() (authenticate() from the pull and the history
            # reads) must not leave the health record saying nothing.
            self.health.failed(str(exc))
            raise
        self._generation += 1
        self._token_cache.save(self._token)
        self._token_noted = True
        log.info(
            "salesforce session obtained",
            extra={"connection": self.connection, "auth": self.settings.auth},
        )

    def reauthenticate(self, seen: int, what: str) -> None:
        """Renew the session refused under generation ``seen`` (once, whichever thread asks)."""
        if not self._tokens.renewable:
            raise FatalSyncError(
                f"Salesforce {what}: the session id was refused (expired or revoked). "
                f"Connection {self.connection!r} uses auth = 'session', which cannot "
                "re-authenticate: give a fresh session_id, or configure jwt, "
                "client_credentials or refresh_token"
            )
        with self._auth_lock:
            # Another thread may have renewed the session already.
            if self._generation == seen:
                log.info(
                    "salesforce session expired; re-authenticating",
                    extra={"connection": self.connection},
                )
                self._login()

    def client(self) -> Client:
        """The calling thread's client for the current session (rebuilt after a re-login)."""
        if self._token is None:
            self.authenticate()
        with self._auth_lock:
            token, generation = self._token, self._generation
        if token is None:  # pragma: no cover - authenticate() sets it or raises
            raise FatalSyncError(f"Salesforce connection {self.connection!r}: no session")
        client: Client | None = getattr(self._local, "client", None)
        if client is None or client.generation != generation:
            sf = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self.http(),
                version=self.settings.api_version,
            )
            client = Client(sf, generation)
            self._local.client = client
        return client

    def mdapi(self, client: Client) -> Any:
        """``sf.mdapi`` with zeep's own HTTP session made to trust ``ca_file`` and count calls."""
        if client.md is None:
            md = client.sf.mdapi
            transport = md._client.transport
            session: requests.Session = transport.session
            session.trust_env = False
            session.verify = self.settings.verify(self.connection)
            session.hooks["response"].append(self._count)
            transport.operation_timeout = self.settings.timeout_seconds
            client.md = md
        return client.md

    def _observe(self, client: Client) -> None:
        """Feed the latest ``Sforce-Limit-Info`` reading into the daily budget."""
        best: tuple[int, int] | None = None
        for usage_map in (client.sf.api_usage, *(t.api_usage for t in client.types.values())):
            usage = usage_map.get("api-usage") if usage_map else None
            if usage is not None and (best is None or usage.used > best[0]):
                best = (usage.used, usage.total)
        if best is not None:
            self.budget.observe(*best)

    def fail(self, exc: Exception, what: str) -> SegsyncError:
        """``exc`` translated, counting a request that never got an answer."""
        if isinstance(exc, requests.RequestException) and exc.response is None:
            self.count_unanswered()
        return translate(exc, what)

    def attempt(self, what: str, fn: Callable[[Client], T]) -> T:
        """One try of ``fn``: budget check, one re-login on an expired session, translation."""
        self.budget.check()
        client = self.client()
        try:
            result = fn(client)
        except Exception as exc:
            if not is_expired(exc):
                raise self.fail(exc, what) from None
            self.reauthenticate(client.generation, what)
            client = self.client()
            try:
                result = fn(client)
            except Exception as again:
                if is_expired(again):
                    raise FatalSyncError(
                        f"Salesforce {what}: a freshly issued session was refused too; "
                        "check the connected app's session policies"
                    ) from None
                raise translate(again, what) from None
        self._observe(client)
        self._succeeded(client.generation)
        return result

    def _succeeded(self, generation: int) -> None:
        """Note a successful call: for readiness, and (once per token) in the token cache."""
        self.health.ok()
        if self._token_noted:
            return
        with self._auth_lock:
            if self._token_noted or generation != self._generation or self._token is None:
                return
            self._token_noted = True
            token = self._token
        # The cached token's idle time counts from here, for the next process.
        self._token_cache.save(token)

    def call(self, what: str, fn: Callable[[Client], T]) -> T:
        """Run one SDK call: budgeted, re-authenticated once, retried, translated."""
        try:
            return self.retry.call(lambda: self.attempt(what, fn))
        except (CrmAccessError, CrmUnreachable) as exc:
            self.health.failed(str(exc))
            raise

    def close(self) -> None:
        """Close every HTTP session opened so far."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
