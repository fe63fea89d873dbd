"""What the app's code in any worker shares, hooks and functions alike: how it refuses (Deny) and how a statement it
ran through the gateway failed (SqlError). Apps import them from `hapta.rules` or `hapta.functions`: one class each,
so a `Deny` raised by a helper module both import serves either kind."""
from __future__ import annotations


class Deny(Exception):
    """Raised by a hook or a function to refuse; the message is passed on to the client."""

    def __init__(self, message: str = "refused by a rule"):
        super().__init__(message)
        self.message = message


class SqlError(Exception):
    """A statement of ctx.sql (or ctx.transaction) failed in PostgreSQL; `sqlstate` is its SQLSTATE code (e.g.
    "23505"), if any."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


__all__ = ["Deny", "SqlError"]
