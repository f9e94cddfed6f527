"""Start the Salesforce sandbox: TLS material, signing keys, credentials, the server thread.

:func:`start_salesforce` is what the pytest fixtures, the ``segsync sandbox`` command
and the benchmarks call; the :class:`SalesforceSandbox` it returns carries every
URL, file and credential a client needs, and builds a ready simple-salesforce
client with :meth:`SalesforceSandbox.client`.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import trustme

from segsync_sandbox.common import Faults, SandboxServer
from segsync_sandbox.salesforce.app import SalesforceApp
from segsync_sandbox.salesforce.auth import OAuthSettings, generate_key_pair, new_token
from segsync_sandbox.salesforce.bulk import bulk_service
from segsync_sandbox.salesforce.org import USERNAME, Org

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

DEFAULT_CLIENT_ID = "3MVG9segsyncSandboxConnectedAppConsumerKey"


@dataclass
class SalesforceSandbox:
    """A running Salesforce sandbox and everything a client needs to reach it."""

    server: SandboxServer
    app: SalesforceApp
    org: Org
    ca_file: Path
    private_key_file: Path
    client_id: str
    client_secret: str
    username: str
    access_token: str
    refresh_token: str
    workdir: Path
    data_dir: Path | None = None
    _own_workdir: bool = field(default=False, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def instance_url(self) -> str:
        """``https://127.0.0.1:PORT`` (no trailing slash)."""
        return self.server.url

    @property
    def login_url(self) -> str:
        """Where the token endpoint lives (the same server); also a valid JWT ``aud``."""
        return self.server.url

    @property
    def token_url(self) -> str:
        """The OAuth 2.0 token endpoint."""
        return f"{self.server.url}/services/oauth2/token"

    @property
    def api_version(self) -> str:
        """The API version served (``"59.0"``)."""
        return self.org.api_version

    def http_session(self) -> requests.Session:
        """A requests session that trusts the sandbox CA and ignores environment CA settings."""
        session = requests.Session()
        # REQUESTS_CA_BUNDLE would silently override `verify` otherwise.
        session.trust_env = False
        session.verify = str(self.ca_file)
        return session

    def client(self, session_id: str | None = None, *, version: str | None = None) -> Salesforce:
        """A ready simple-salesforce client on the direct-session path."""
        from simple_salesforce.api import Salesforce

        return Salesforce(
            instance_url=self.instance_url,
            session_id=session_id or self.access_token,
            session=self.http_session(),
            version=version or self.api_version,
        )

    def new_access_token(self) -> str:
        """Issue a fresh access token without going through OAuth (tests)."""
        return self.app.tokens.issue("test").token

    def connection_info(self) -> dict[str, Any]:
        """What ``segsync sandbox --format json`` prints under ``salesforce``."""
        return {
            "instance_url": self.instance_url,
            "login_url": self.login_url,
            "token_url": self.token_url,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "ca_file": str(self.ca_file),
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "private_key_file": str(self.private_key_file),
            "api_version": self.api_version,
        }

    def reset(self, org: Org | None = None) -> Org:
        """Serve a fresh org (or ``org``); clear faults, hooks, the request log and open cursors.

        Issued tokens stay valid and the ready session id is renewed (valid again, call
        count zero), so one server can be reused between tests.
        """
        new = org if org is not None else Org()
        new.faults = self.app.faults
        self.app.faults.set(Faults())
        self.app.org = new
        self.org = new
        self.app.log.clear()
        self.app.clear_cursors()
        self.app.after_subrequest = None
        bulk_service(self.app).reset()
        self.app.tokens.issue("session", self.access_token, expires=False)
        return new

    def save(self) -> None:
        """Persist the org to ``data_dir`` (no-op without one)."""
        if self.data_dir is not None:
            self.org.save(self.data_dir)

    def stop(self) -> None:
        """Stop serving, persist the org when a data directory is set, remove temp files."""
        if self._stopped:
            return
        self._stopped = True
        self.server.stop()
        self.save()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SalesforceSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_salesforce(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    data_dir: str | Path | None = None,
    org: Org | None = None,
    token_lifetime_seconds: float | None = 7200.0,
    session_id: str | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str | None = None,
    username: str = USERNAME,
    workdir: str | Path | None = None,
    daily_api_limit: int = 100_000,
    cursor_ttl_seconds: float = 900.0,
) -> SalesforceSandbox:
    """Start a Salesforce sandbox on a background thread and return its handle.

    Args:
        port: TCP port (0 picks a free one).
        host: the address to bind.
        data_dir: load the org from here when it holds one; save it here on stop.
        org: serve this org (wins over ``data_dir`` loading).
        token_lifetime_seconds: lifetime of OAuth-issued access tokens.
        session_id: the ready access token (random when None); it does not time out.
        client_id: the connected app's consumer key.
        client_secret: its consumer secret (random when None).
        username: the user JWT assertions must name in ``sub``.
        workdir: where the CA, certificate and JWT key files go (a temp dir when None,
            removed on stop).
        daily_api_limit: the DailyApiRequests allocation of a new org.
        cursor_ttl_seconds: how long an unused query locator stays valid.

    """
    data_path = Path(data_dir) if data_dir is not None else None
    if org is None:
        if data_path is not None and Org.exists(data_path):
            org = Org.load(data_path)
        else:
            org = Org(daily_api_limit=daily_api_limit)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="segsync-sf-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = work / "salesforce-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    key_file, public_pem = generate_key_pair(work)
    refresh_token = "5Aep" + secrets.token_urlsafe(48)
    settings = OAuthSettings(
        client_id=client_id,
        client_secret=client_secret or secrets.token_hex(32).upper(),
        username=username,
        public_keys=[public_pem],
        refresh_tokens={refresh_token},
    )
    token = session_id or new_token()
    app = SalesforceApp(
        org,
        oauth=settings,
        token_lifetime_seconds=token_lifetime_seconds,
        session_id=token,
        cursor_ttl_seconds=cursor_ttl_seconds,
    )
    server = SandboxServer(app, host=host, port=port, ssl_context=context)
    app.base_url = server.url
    server.start()
    return SalesforceSandbox(
        server=server,
        app=app,
        org=org,
        ca_file=ca_file,
        private_key_file=key_file,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        username=username,
        access_token=token,
        refresh_token=refresh_token,
        workdir=work,
        data_dir=data_path,
        _own_workdir=own,
    )
