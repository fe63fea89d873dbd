from tests.files.conftest import seaweed  # noqa: F401  (a private SeaweedFS: the nodes' one S3)
from tests.limits.conftest import RUN_PREFIX, redis_url  # noqa: F401  (Redis, with cleanup of this run's keys)
