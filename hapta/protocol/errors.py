"""The error codes of the wire protocol, and the one exception that carries them to the client.

    HaptaError(code, message)      -> {"ok": false, "error": {"code", "message", "details"?, "retry_after"?}}

Anything else raised while serving a request is a bug or an upstream fault: the connection logs it and answers
INTERNAL (or UNAVAILABLE for a dead upstream), never with a traceback.
"""
from __future__ import annotations

from typing import Any

BAD_REQUEST = "BAD_REQUEST"
UNKNOWN_OP = "UNKNOWN_OP"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
VALIDATION_FAILED = "VALIDATION_FAILED"
RULE_DENIED = "RULE_DENIED"
RATE_LIMITED = "RATE_LIMITED"
TOO_LARGE = "TOO_LARGE"
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
ALREADY_EXISTS = "ALREADY_EXISTS"
TOKEN_INVALID = "TOKEN_INVALID"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_REUSED = "TOKEN_REUSED"
MFA_REQUIRED = "MFA_REQUIRED"   # (beyond the contract) a password was right; the second factor comes next
UNAVAILABLE = "UNAVAILABLE"
TIMEOUT = "TIMEOUT"
INTERNAL = "INTERNAL"



class HaptaError(Exception):
    """An answer for the client: a code from the list above and a message safe to show."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def to_wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error
