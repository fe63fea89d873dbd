"""The gateway's recent warnings and errors, for the dashboard's Logs page (admin.warnings): a logging handler on
the `hapta` loggers that keeps the last WARNING-or-worse records of this process in memory (each worker process of
`--workers` keeps its own). What the log already says, bounded: the message, the logger, the level, the time, and
for an exception its type, message and frames as the log prints them (traceback.format_exception: no local
values)."""
from __future__ import annotations

import collections
import logging
import traceback
from typing import Any

KEPT = 200            # records kept, the newest
MESSAGE_CHARS = 2000  # of a message, and of a traceback's text


class Warnings(logging.Handler):
    def __init__(self, kept: int = KEPT):
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=kept)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry: dict[str, Any] = {"at": record.created, "level": record.levelname, "logger": record.name,
                                     "message": record.getMessage()[:MESSAGE_CHARS]}
            if record.exc_info and record.exc_info[1] is not None:
                entry["exception"] = "".join(traceback.format_exception(*record.exc_info))[-MESSAGE_CHARS:]
            self.records.append(entry)
        except Exception:   # a message that cannot be formatted must not break the code that logged it
            self.handleError(record)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` records, newest first."""
        return list(reversed(self.records))[:limit]
