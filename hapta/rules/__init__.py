"""What an app's rules/<collection>.py hooks import: `from hapta.rules import Deny`. The hooks' code lives in
hapta.hooks (and their workers in hapta.workers); `hapta.rules` is the name apps use, as the folder is rules/
(docs/rules.md). Everywhere else "rules" means the collections' access rules (hapta.access)."""
from ..hooks.api import Context, Deny, SqlError

__all__ = ["Context", "Deny", "SqlError"]
