"""bench/first_render.py without a browser or servers: the table it makes of the page's loads."""
from __future__ import annotations

from bench.first_render import summary


def load(case: str, first: float | None, stale: bool | None, open_: float | None = None,
         answer: float | None = None, error: str | None = None) -> dict:
    return {"case": case, "round": 1, "script": 50.0, "connected": 80.0, "first": first, "stale": stale,
            "open": open_, "answer": answer, "items": 500 if first else 0, "error": error}


def test_the_table_gives_median_and_range_per_case_and_where_the_first_items_came_from():
    table = summary([load("uncached", 300, False, 300, 300), load("uncached", 200, False, 200, 200),
                     load("uncached", 400, False, 400, 400),
                     load("cached", 100, True, 250, 260), load("cached", 120, True, 240, 270),
                     load("cached, socket blocked", 90, True), load("cached, socket blocked", None, None,
                                                                    error="timed out")], 500, 3)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert rows["uncached"] == ("| uncached | 50 (50–50) | 80 (80–80) | 300 (200–400) | gateway | 300 (200–400) "
                                "| 300 (200–400) | 3 |")
    assert rows["cached"] == "| cached | 50 (50–50) | 80 (80–80) | 110 (100–120) | cache (stale) | 245 (240–250) " \
                             "| 265 (260–270) | 2 |"
    assert rows["cached, socket blocked"] == ("| cached, socket blocked | 50 (50–50) | 80 (80–80) | 90 (90–90), "
                                              "1 never | cache (stale) | — | — | 2 |")
    assert "Errors: timed out" in table
    assert "first render with 500 items" in table


def test_a_case_shown_both_ways_says_so_and_one_never_shown_too():
    table = summary([load("cached", 100, True), load("cached", 300, False), load("uncached", None, None)], 500, 1)
    assert "| mixed |" in table and "| never shown |" in table and "1 never" in table
