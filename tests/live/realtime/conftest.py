"""A second gateway process on the same database: what one worker hears, every worker must hear."""
from __future__ import annotations

import pytest

from tests.conftest import gateway_env
from tests.services import GatewayProcess


@pytest.fixture(scope="package")
def second_gateway(database):
    process = GatewayProcess(gateway_env(database)).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()
