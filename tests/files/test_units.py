"""The pure parts of files, without servers: type detection, URL signing, byte ranges, keys."""
from __future__ import annotations

import pytest

from hapta.files.http import Unsatisfiable, parse_range
from hapta.files.signing import UrlRefused, UrlSigner
from hapta.store.files.types import KNOWN_TYPES, OCTET_STREAM, detect
from hapta.files.thumbs import Size, parse_size, thumb_key
from hapta.store.files import check_key, new_key


@pytest.mark.parametrize("head, kind", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"GIF89a\x01\x00", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00", "video/mp4"),
    (b"\x00\x00\x00\x1cftypavif", "image/avif"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
    (b"%PDF-1.7", "application/pdf"),
    (b"\x7fELF\x02\x01\x01", "application/x-executable"),
    (b"MZ\x90\x00", "application/x-msdownload"),
    (b"<svg xmlns=", OCTET_STREAM),      # markup is never an image here: it could carry script
    (b"", OCTET_STREAM),
    (b"\x89PN", OCTET_STREAM),           # too short to be sure
])
def test_detect(head, kind):
    assert detect(head) == kind
    assert kind in KNOWN_TYPES or kind == OCTET_STREAM


def test_signed_urls():
    signer = UrlSigner("s" * 40)
    path = signer.path("posts/media/abc/" + "0" * 32, "my cat.png", "image/png", 2_000_000_000)
    assert path.startswith("/files/posts/media/abc/") and "my%20cat.png" in path
    signed = signer.verify(path, now=1_999_999_999)
    assert (signed.key, signed.name, signed.type) == ("posts/media/abc/" + "0" * 32, "my cat.png", "image/png")
    with pytest.raises(UrlRefused, match="expired"):
        signer.verify(path, now=2_000_000_000)
    for forged in (path.replace("image%2Fpng", "text%2Fhtml"), path.replace("my%20cat", "my%20dog"),
                   path.replace("expires=2000000000", "expires=2000000001"), path.replace("/abc/", "/abd/"),
                   path.split("&sig=")[0], path + "x"):
        with pytest.raises(UrlRefused):
            signer.verify(forged, now=0)
    with pytest.raises(UrlRefused):   # another secret, another key
        UrlSigner("t" * 40).verify(path, now=0)


@pytest.mark.parametrize("header, size, wanted", [
    (None, 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)), ("bytes=50-1000", 100, (50, 99)), ("bytes=0-1,5-6", 100, None),
    ("items=0-1", 100, None), ("bytes=9-1", 100, None),
])
def test_parse_range(header, size, wanted):
    assert parse_range(header, size) == wanted


@pytest.mark.parametrize("header, size", [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_keys():
    key = new_key("posts", "media", "abc123")
    assert check_key(key) == key and key.startswith("posts/media/abc123/")
    assert new_key("posts", "media", "abc123") != key
    odd = new_key("posts", "media", "../../etc")
    assert check_key(odd) and "/../" not in odd
    for bad in ("../x", "posts/media/abc/../../x", "/etc/passwd", "posts/media/abc/" + "0" * 31, ""):
        with pytest.raises(ValueError):
            check_key(bad)


@pytest.mark.parametrize("text, size", [
    ("100x100", Size(100, 100, "")), ("480x0", Size(480, 0, "")), ("0x300", Size(0, 300, "")),
    ("120x80t", Size(120, 80, "t")), ("120x80b", Size(120, 80, "b")), ("200x50f", Size(200, 50, "f")),
])
def test_thumb_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0x0", "100", "100x", "x100", "100X100", "100x100c", "0x100f", "100x0t",
                                  "99999x1", " 100x100", "-1x10", "100x100\n"])
def test_bad_thumb_sizes(text):
    with pytest.raises(ValueError, match="thumb size"):
        parse_size(text)


def test_a_bad_declared_size_stops_the_start_naming_it():
    from types import SimpleNamespace
    from hapta.config import Collection, ConfigError, FileField
    from hapta.files.service import declared_fields
    from hapta.query import schema as kinds
    collection = Collection("posts", files={"media": FileField(thumbs=("100x100", "100x100q"))})
    model = SimpleNamespace(info=SimpleNamespace(columns={"media": SimpleNamespace(kind=kinds.JSON)}))
    with pytest.raises(ConfigError, match=r"posts.files\['media'\].*'100x100q'"):
        declared_fields([collection], {"posts": model})
    one = Collection("posts", files={"media": FileField(thumbs="100x100")})   # a string, not a tuple of one
    with pytest.raises(ConfigError, match=r"thumbs is a tuple of sizes, e.g. \('100x100',\)"):
        declared_fields([one], {"posts": model})


def test_thumbnail_keys_are_gateway_keys():
    key = new_key("posts", "media", "r1")
    assert check_key(thumb_key(key, "120x80t")) == key + "_120x80t"
    with pytest.raises(ValueError):
        check_key(key + "_../x")


def test_declared_sizes_are_in_the_typescript_types():
    from types import SimpleNamespace
    from hapta.config import Collection, FileField
    from hapta.typescript import interfaces
    collection = Collection("posts", files={"media": FileField(thumbs=("100x100", "480x0")),
                                            "other": FileField()})
    fields = {name: SimpleNamespace(relation=None) for name in ("media", "other")}
    model = SimpleNamespace(collection=collection, visible=["media", "other"], writable=[],
                            table=SimpleNamespace(fields=fields))
    text = interfaces({"posts": model})
    assert "export interface Thumbs {" in text
    assert '  posts: { media: "100x100" | "480x0"; other: never };' in text


def test_signed_etags_and_if_none_match():
    from hapta.files.http import matches
    signer = UrlSigner("secret")
    path = signer.path("posts/media/r/" + "0" * 32, "a.png", "image/png", 2_000_000_000, "ab12")
    assert signer.verify(path, now=0).etag == "ab12"
    with pytest.raises(UrlRefused):
        signer.verify(path.replace("etag=ab12", "etag=ab13"), now=0)
    with pytest.raises(UrlRefused):
        signer.verify(path.replace("etag=ab12&", ""), now=0)
    assert signer.verify(signer.path("posts/media/r/" + "0" * 32, "a", "t", 2_000_000_000), now=0).etag is None
    assert matches('"x", W/"ab12"', '"ab12"') and matches("*", '"ab12"')
    assert not matches('"ab1"', '"ab12"') and not matches(None, '"ab12"') and not matches("", '"ab12"')
