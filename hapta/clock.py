"""Time, as the parts that judge it read it: a clock is a function that answers the epoch seconds now.

Services that decide by the wall clock (token expiry, a principal's expiry at dispatch and delivery, second-factor
time steps, signed links) are built with one (`wall`, by default), so that pure tests can walk them through time
with a clock of their own instead of waiting (centrifuge's nowTimeGetter is the model). What PostgreSQL decides
by its own now() (sessions' lifetimes, mailed tokens' expiry) stays the database's.
"""
from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]

wall: Clock = time.time
