"""Hapta: a WebSocket-first gateway in front of PostgreSQL and S3."""
__version__ = "0.1.0"
