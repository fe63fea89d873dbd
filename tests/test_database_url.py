"""What a DATABASE_URL was read as, in the messages about it (issue 33, item 8): host, port, database and user as
parsed, never the password; a URL asyncpg cannot take is refused with them at start. No servers."""
from __future__ import annotations

import pytest

from hapta.settings import Settings, SettingsError, database_parts

SECRETS = {"HAPTA_JWT_SECRET": "s" * 40, "HAPTA_ANON_KEY": "anon", "HAPTA_ADMIN_KEY": "admin"}


def refusal(url: str, tmp_path) -> str:
    with pytest.raises(SettingsError) as error:
        Settings.load(tmp_path, {**SECRETS, "DATABASE_URL": url})
    return str(error.value)


@pytest.mark.parametrize(("url", "read"), [
    ("postgresql://app:s3cret@db.example:6543/appdb", "host db.example, port 6543, database appdb, user app"),
    ("postgres://app:s3cret@127.0.0.1/appdb", "host 127.0.0.1, port 5432, database appdb, user app"),
    ("postgresql://[::1]:5433/x%20y", "host ::1, port 5433, database x y, user not given"),
    ("postgresql:///appdb?host=/run/postgresql&user=app", "host /run/postgresql, port 5432, database appdb, user app"),
    ("postgresql://", "host not given, port 5432, database not given, user not given"),
])
def test_a_url_is_described_by_its_parts_without_the_password(url, read):
    assert database_parts(url) == read
    assert "s3cret" not in database_parts(url)


def test_a_well_formed_url_is_accepted(tmp_path):
    assert Settings.load(tmp_path, {**SECRETS, "DATABASE_URL": "postgresql://app:pw@db/appdb"}).database_url


def test_a_url_without_its_scheme_is_refused_saying_what_it_was_read_as(tmp_path):
    assert refusal("postgres//oops", tmp_path) == (
        "DATABASE_URL must start with postgresql:// or postgres:// (it reads as host not given, port 5432, "
        "database postgres//oops, user not given)")
    said = refusal("localhost:5432/appdb", tmp_path)
    assert said.startswith("DATABASE_URL must start with postgresql:// or postgres://") and "5432postgres" not in said


@pytest.mark.parametrize("url", [
    "postgresql://app:pq/zx@db.example:5432/appdb",    # an unencoded / in the password moves the split
    "postgresql://app:pq:zx/@db.example/appdb",
    "postgresql://app:s3cret@db.example:54x2/appdb",
    "postgresql://app:pq@zx@db.example/appdb",          # asyncpg ends the user part at the first '@'
])
def test_a_url_that_does_not_parse_is_refused_and_shows_no_piece_of_the_password(url, tmp_path):
    said = refusal(url, tmp_path)
    assert said.startswith("DATABASE_URL ") and "percent-encode" in said
    for piece in ("pq", "zx", "s3cret"):
        assert piece not in said, said


def test_a_url_without_its_scheme_shows_no_password_either(tmp_path):
    for url in ("postgres//app:s3cret@oops/appdb", "app:s3cret@db.example/appdb", "//app:s3cret@db.example/appdb"):
        said = refusal(url, tmp_path)
        assert said.startswith("DATABASE_URL must start with postgresql://") and "s3cret" not in said, said


def test_replica_urls_are_read_comma_separated_and_checked_like_database_url_without_the_password(tmp_path):
    primary = {**SECRETS, "DATABASE_URL": "postgresql://app:pw@db/appdb"}
    settings = Settings.load(tmp_path, {**primary, "DATABASE_REPLICA_URLS":
                                        "postgresql://app:pw@r1/appdb, postgres://app:pw@r2:6543/appdb"})
    assert settings.database_replica_urls == ("postgresql://app:pw@r1/appdb", "postgres://app:pw@r2:6543/appdb")
    with pytest.raises(SettingsError) as error:
        Settings.load(tmp_path, {**primary, "DATABASE_REPLICA_URLS": "postgresql://app:pw@r1/appdb,"
                                                                    "postgresql://app:p@ss/w0rd@r2/appdb"})
    said = str(error.value)
    assert said.startswith("DATABASE_REPLICA_URLS (URL 2) does not parse") and "w0rd" not in said, said
    with pytest.raises(SettingsError) as error:
        Settings.load(tmp_path, {**primary, "DATABASE_REPLICA_URLS": "mysql://app:s3cret@r1/appdb"})
    assert str(error.value).startswith("DATABASE_REPLICA_URLS (URL 1) must start with postgresql://")
    assert "s3cret" not in str(error.value)
    with pytest.raises(SettingsError, match="DATABASE_REPLICA_URLS needs DATABASE_URL"):
        Settings.load(tmp_path, {**SECRETS, "DATABASE_REPLICA_URLS": "postgresql://app:pw@r1/appdb"})
