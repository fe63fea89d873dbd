"""One module per op family; importing this package registers them all in base.OPS."""
from . import auth, misc, records  # noqa: F401
