from tests.limits.conftest import RUN_PREFIX, redis_url  # noqa: F401  (Redis, with cleanup of this run's keys)
from tests.live.realtime.conftest import second_gateway  # noqa: F401  (a second worker process on the same database)
