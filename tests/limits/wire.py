"""What the gateway tests of the limiter share: a test app with a scarce limit, and small wire helpers."""
from __future__ import annotations

import secrets
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from hapta.client import Client, HaptaError
from tests.conftest import PASSWORD
from tests.services import GatewayProcess

N = 10                 # posts a user may create per hour in the test app: nothing refills during a test
T = 3600 / N           # seconds per post at the sustained rate

SCARCE_POSTS = f"""
    import dataclasses, runpy
    from hapta.config import Limit
    demo = runpy.run_path(APP + "/config.py")["app"]
    app = dataclasses.replace(demo, limits={{**demo.limits, "records.create:posts": Limit({N}, per=3600)}})
"""


def start_all(processes: list[GatewayProcess]) -> list[GatewayProcess]:
    for process in processes:
        process.start()
    return processes


def stop_all(processes: list[GatewayProcess]) -> None:
    for process in processes:
        process.stop()
    for process in processes:
        assert "Traceback" not in process.log_text(), process.log_text()


async def register(client: Client) -> dict:
    name = "l" + secrets.token_hex(5)
    return await client.call("auth.register", {"email": f"{name}@example.com", "password": PASSWORD,
                                               "username": name})


def new_post(session: dict, text: str = "hello") -> tuple[str, dict]:
    return "records.create", {"collection": "posts", "data": {"author": session["user"]["id"], "text": text}}


async def outcomes(client: Client, calls: list) -> list:
    """Each call's data, or its error code."""
    return [r.code if isinstance(r, HaptaError) else r for r in await client.batch(calls)]


def scrape(process: GatewayProcess, **headers: str) -> tuple[int, str, str]:
    request = urllib.request.Request(process.http + "/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("WWW-Authenticate", ""), error.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return 0.0
