"""clientlink sandbox: a faithful local emulation of Xero's OAuth2 sign-in and API.

Start it with `SandboxServer` (in-process) or `clientlink sandbox` / `python -m
clientlink.sandbox`; drive the sign-in pages with `approve`.
"""

from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.state import SandboxState

__all__ = ["ApproveError", "SandboxClock", "SandboxServer", "SandboxState", "approve"]
