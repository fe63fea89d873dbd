"""What an app's rules/<collection>.py hooks import: `from hapta.rules import Deny`. The hook machinery lives in
hapta.hooks; this name stays for the apps (docs/rules.md)."""
from ..hooks.api import Context, Deny, SqlError

__all__ = ["Context", "Deny", "SqlError"]
