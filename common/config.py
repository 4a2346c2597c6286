"""Loading ``config.toml``: one validated object for the daemon and the CLI.

Every setting has a default, so a missing file is a valid (empty) configuration.
A file that does not validate raises :class:`ConfigError` with the key and the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clientlink.common.errors import describe_validation_error


class ConfigError(Exception):
    """The configuration file is unreadable or has a bad value; the message says which."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PracticeConfig(_Section):
    name: str = "My practice"


class AuthConfig(_Section):
    callback_host: str = "127.0.0.1"
    callback_port: int = Field(
        default=8749,
        ge=0,
        le=65535,
        description="Loopback port for the OAuth redirect; 0 picks a free one per sign-in.",
    )
    callback_path: str = "/callback"
    session_minutes: int = Field(default=10, ge=1, le=60)


class VaultConfig(_Section):
    backend: Literal["keyring", "passphrase"] = Field(
        default="keyring",
        description="Where the data key lives: the system keyring, or wrapped by a passphrase.",
    )
    keyring_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    passphrase_env: str = "CLIENTLINK_VAULT_PASSPHRASE"
    passphrase_file: str | None = None


class WatchConfig(_Section):
    warning_days: int = Field(
        default=14, ge=0, le=365, description="Warn this long before a grant's hard end."
    )
    refresh_margin_seconds: int = Field(
        default=300, ge=30, le=3600, description="Refresh this long before an access token ends."
    )
    jitter_seconds: int = Field(
        default=60, ge=0, le=3600, description="Spread refreshes by up to this much."
    )
    error_after_failure_days: int = Field(
        default=3,
        ge=1,
        le=60,
        description="Mark clients 'error' only after failures on this many separate days.",
    )
    backoff_max_seconds: int = Field(default=3600, ge=60, le=86400)


class NotificationsConfig(_Section):
    desktop: bool = Field(default=True, description="Show desktop notifications when possible.")
    kinds: list[Literal["needs_reauth", "expiring", "error"]] = Field(
        default_factory=lambda: ["needs_reauth", "expiring", "error"],
        description="Which transitions notify.",
    )
    digest_threshold: int = Field(
        default=3, ge=2, le=1000, description="This many together become one digest."
    )
    digest_window_seconds: float = Field(
        default=5.0, ge=0, le=300, description="Transitions this close together are gathered."
    )
    open_command: list[str] | None = Field(
        default=None, description="What the notification's Open action runs."
    )


class ProviderConfig(_Section):
    kind: Literal["xero", "quickbooks", "bgl", "class", "myob"]
    client_id: str = ""
    display_name: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    revoke_url: str | None = None
    connections_url: str | None = None
    api_base: str | None = None
    userinfo_url: str | None = None
    scopes: list[str] | None = None
    # Xero since March 2026: the app's pricing tier ("exempt" for a practice's own
    # integration); daemon.status shows connections and API egress against it.
    tier: Literal["starter", "core", "plus", "advanced", "enterprise", "exempt"] | None = None
    # Class Super: the business codes this app's credentials were issued for. One
    # authorisation covers one business (scope `target:b/<code>`), so a sign-in names one.
    businesses: list[str] = Field(default_factory=list, max_length=1000)


class EmailConfig(_Section):
    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    verify_tls: bool = Field(
        default=True, description="Check the server's certificate (off only for a local test)."
    )
    username: str = ""
    from_address: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    per_minute: int = Field(default=60, ge=1, le=10_000, description="Sending pace.")


class SmsConfig(_Section):
    api_base: str = "https://api.twilio.com"
    account_sid: str = ""
    from_number: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    per_minute: int = Field(default=60, ge=1, le=10_000, description="Sending pace.")


class BanksConfig(_Section):
    api_base: str = "https://au-api.basiq.io"
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)


class InvitesConfig(_Section):
    reminder_days: int = Field(
        default=3, ge=0, le=60, description="Remind a client who has not acted (0: never)."
    )
    poll_seconds: int = Field(default=60, ge=5, le=3600, description="Follow-up pace.")


class NetworkConfig(_Section):
    timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, description="Give up on a provider call after this long."
    )


class FirmConfig(_Section):
    """Firm mode: one system-wide daemon serving the practice's staff over its group socket."""

    enabled: bool = Field(
        default=False,
        description="Serve the staff on the staff list (by Unix login), not only this user.",
    )
    group: str = Field(
        default="clientlink", description="The Unix group whose members may reach the socket."
    )
    first_admin: str | None = Field(
        default=None,
        max_length=64,
        description="The login made admin when the staff list is empty (the installer).",
    )


class AlertsConfig(_Section):
    """Digest emails about connections that need attention (through the [email] server)."""

    email: bool = Field(default=True, description="Send alert digests by email at all.")
    address: str | None = Field(
        default=None,
        max_length=254,
        description="The practice's alert address: it gets every digest, besides the owners.",
    )

    @field_validator("address")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        local, at, domain = value.partition("@")
        if not (local and at and "." in domain) or any(c.isspace() or ord(c) < 0x20 for c in value):
            raise ValueError(f"{value!r} is not one email address (like alerts@practice.example)")
        return value

    digest_minutes: int = Field(
        default=30,
        ge=0,
        le=24 * 60,
        description="At most one digest per person per this many minutes; the first alert "
        "waits this long, so a connection that recovers meanwhile is left out (0: at once).",
    )


class Config(_Section):
    """The whole configuration."""

    practice: PracticeConfig = Field(default_factory=PracticeConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    vault: VaultConfig = Field(default_factory=VaultConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    banks: BanksConfig = Field(default_factory=BanksConfig)
    invites: InvitesConfig = Field(default_factory=InvitesConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    firm: FirmConfig = Field(default_factory=FirmConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


def load_config(path: Path) -> Config:
    """Read and validate ``path``; a missing file gives the defaults."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc
