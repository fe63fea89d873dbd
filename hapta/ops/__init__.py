"""One module per op family; importing this package registers them all in base.OPS."""
from . import auth, files, limits, live, misc, records, rules  # noqa: F401
