"""Who can sign in to the sandbox and which apps are registered with it.

These are rehearsal credentials, deliberately public: they are printed at start and served
by `GET /_sandbox/info`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEMO_USER = "demo@practice.example"
STAFF_USERS: tuple[str, ...] = (DEMO_USER, "alex@practice.example", "sam@practice.example")
DEMO_PASSWORD = "sandbox-demo"
# One authenticator secret for every user keeps the rehearsal simple; valid base32 (A-Z2-7).
TOTP_SECRET = "JBSWY3DPEHPK3PXPCLIENTLINKDEMO23"

PUBLIC_CLIENT_ID = "clientlink-demo"
CONFIDENTIAL_CLIENT_ID = "clientlink-confidential"
CONFIDENTIAL_CLIENT_SECRET = "sandbox-secret"
# QuickBooks Online: Intuit registers only confidential apps, so this one has a secret.
QUICKBOOKS_CLIENT_ID = "clientlink-qbo"
QUICKBOOKS_CLIENT_SECRET = "sandbox-qbo-secret"
# BGL Simple Fund 360: confidential apps, credentials sent as HTTP Basic.
BGL_CLIENT_ID = "clientlink-bgl"
BGL_CLIENT_SECRET = "sandbox-bgl-secret"
# MYOB Business: the API key (client_id) and its secret, registered after 12 March 2025 (so
# it asks for the granular sme-* scopes). MYOB_BOOKKEEPER signs in to MYOB only and is a
# user of every company file but Administrator of none, so MYOB refuses to let them approve.
MYOB_CLIENT_ID = "clientlink-myob"
MYOB_CLIENT_SECRET = "sandbox-myob-secret"
MYOB_BOOKKEEPER = "bookkeeper@practice.example"

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True)
class SandboxApp:
    """An OAuth2 client registered with the sandbox.

    `redirect_uris` are compared without their port when they point at a loopback address
    (RFC 8252 §7.3: the server must accept any port). With `any_loopback_path` every path on a
    loopback address is accepted, which is what a native app picking a random port needs.
    """

    client_id: str
    name: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    any_loopback_path: bool = False
    # Xero's pricing tier of the app (common/xero_tiers.py); "exempt" has no caps beyond
    # the standard limits.
    tier: str = "exempt"

    @property
    def is_public(self) -> bool:
        """True for PKCE public clients, which have no secret."""
        return self.client_secret is None

    def accepts_redirect_uri(self, redirect_uri: str) -> bool:
        """Whether `redirect_uri` is registered for this app (loopback ports are free)."""
        candidate = _split_redirect(redirect_uri)
        if candidate is None:
            return False
        scheme, host, _port, rest = candidate
        if scheme == "http" and host in LOOPBACK_HOSTS and self.any_loopback_path:
            return True
        for registered in self.redirect_uris:
            parts = _split_redirect(registered)
            if parts is None:
                continue
            r_scheme, r_host, r_port, r_rest = parts
            if (r_scheme, r_host, r_rest) != (scheme, host, rest):
                continue
            if host in LOOPBACK_HOSTS or r_port == _port:
                return True
        return False


def _split_redirect(uri: str) -> tuple[str, str, int | None, str] | None:
    """Split a redirect URI into (scheme, host, port, path+query), or None if malformed."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.fragment:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    rest = parts.path or "/"
    if parts.query:
        rest += "?" + parts.query
    return parts.scheme, host, port, rest


@dataclass
class StaffUser:
    """A practice staff member who can sign in and consent."""

    email: str
    password: str = DEMO_PASSWORD
    totp_secret: str = TOTP_SECRET
    # None means every organisation in the practice.
    tenant_ids: set[str] | None = field(default=None)


def default_apps() -> list[SandboxApp]:
    """The two apps every sandbox starts with: one public PKCE client, one confidential."""
    return [
        SandboxApp(
            client_id=PUBLIC_CLIENT_ID,
            name="clientlink",
            any_loopback_path=True,
        ),
        SandboxApp(
            client_id=CONFIDENTIAL_CLIENT_ID,
            name="clientlink (confidential)",
            client_secret=CONFIDENTIAL_CLIENT_SECRET,
            redirect_uris=("http://127.0.0.1:8749/callback",),
        ),
    ]


def default_quickbooks_apps() -> list[SandboxApp]:
    """The app every sandbox's QuickBooks Online starts with: confidential, any loopback port."""
    return [
        SandboxApp(
            client_id=QUICKBOOKS_CLIENT_ID,
            name="clientlink (QuickBooks)",
            client_secret=QUICKBOOKS_CLIENT_SECRET,
            any_loopback_path=True,
        )
    ]


def default_bgl_apps() -> list[SandboxApp]:
    """The app every sandbox's BGL Simple Fund 360 starts with: confidential, any loopback."""
    return [
        SandboxApp(
            client_id=BGL_CLIENT_ID,
            name="clientlink (BGL)",
            client_secret=BGL_CLIENT_SECRET,
            any_loopback_path=True,
        )
    ]
def default_myob_apps() -> list[SandboxApp]:
    """The app every sandbox's MYOB starts with: confidential, any loopback port."""
    return [
        SandboxApp(
            client_id=MYOB_CLIENT_ID,
            name="clientlink (MYOB)",
            client_secret=MYOB_CLIENT_SECRET,
            any_loopback_path=True,
        )
    ]


def default_users() -> list[StaffUser]:
    """The practice staff who can sign in; each can reach every organisation."""
    return [StaffUser(email=email) for email in STAFF_USERS]
