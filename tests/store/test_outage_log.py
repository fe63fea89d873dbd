"""An upstream's outage, as requests meet it, is a few log lines: the first failure, then one line per window
saying how many it stands for (pure: a clock the test moves)."""
from __future__ import annotations

import logging

from hapta.store.failures import OutageLog


def test_an_outage_is_a_line_per_window_counting_what_it_stands_for(caplog):
    now = [100.0]
    outages = OutageLog(logging.getLogger("hapta.test.outages"), window=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="hapta.test.outages"):
        for _ in range(50):   # fifty requests meet the database down within a second
            outages.failed("postgres", "records.create", "ConnectionRefusedError")
            now[0] += 0.02
        outages.failed("redis", "channels.publish", "BusDown")   # another upstream has lines of its own
        now[0] += 10.0
        outages.failed("postgres", "records.get", "ConnectionRefusedError")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "upstream trouble (postgres) during records.create: ConnectionRefusedError",
        "upstream trouble (redis) during channels.publish: BusDown",
        "upstream trouble (postgres) during records.get: ConnectionRefusedError (and 49 more since the last line)",
    ]
