"""clientlink sandbox: a faithful local emulation of Xero's and QuickBooks Online's OAuth2
sign-in and API, over one practice's staff and businesses, plus what client invitations
reach: an SMTP server, a Twilio-like SMS gateway and a Basiq-like bank-feed provider.

Start it with `SandboxServer` (in-process) or `clientlink sandbox` / `python -m
clientlink.sandbox`; drive the sign-in pages with `approve`.
"""

from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.state import SandboxState

__all__ = ["ApproveError", "SandboxClock", "SandboxServer", "SandboxState", "approve"]
