"""Which applied migrations a start refuses to run without, judged without a database (issue 33, item 7)."""
from __future__ import annotations

import pytest

from hapta.store.migrations import MigrationError, _refuse_missing

DONE = {"hapta/0001_core.sql": "a", "app/0001_social.sql": "b", "app/0002_search.sql": "c"}
ALL = [("hapta/0001_core.sql", ""), ("app/0001_social.sql", ""), ("app/0002_search.sql", "")]


def test_every_applied_file_present_or_new_is_fine():
    _refuse_missing(DONE, ALL, with_app=True)
    _refuse_missing(DONE, ALL + [("app/0003_new.sql", "")], with_app=True)


def test_a_deleted_app_migration_is_named():
    with pytest.raises(MigrationError, match=r"^migration app/0002_search\.sql was applied to this database but "
                                             r"its file is gone: put the file back"):
        _refuse_missing(DONE, ALL[:2], with_app=True)


def test_many_deleted_name_the_first_and_count_the_rest():
    with pytest.raises(MigrationError, match=r"^migration app/0001_social\.sql \(and 1 more\) was applied"):
        _refuse_missing(DONE, ALL[:1], with_app=True)


def test_a_deleted_core_migration_is_refused_too():
    with pytest.raises(MigrationError, match=r"^migration hapta/0001_core\.sql was applied"):
        _refuse_missing(DONE, ALL[1:], with_app=True)


def test_without_an_app_folder_only_the_gateways_own_are_judged():
    _refuse_missing(DONE, ALL[:1], with_app=False)
