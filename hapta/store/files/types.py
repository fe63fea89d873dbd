"""What a file is, judged by its first bytes: a small table of signatures, not the client's word or the name.

Only types that can be recognised here may be allowed in a FileField, so a declared type is always checked. A file
whose bytes match nothing is `application/octet-stream`, which only a field that accepts any content takes.
"""
from __future__ import annotations

# How many leading bytes `detect` needs to decide; a shorter file is judged on what it has.
HEAD_SIZE = 64

OCTET_STREAM = "application/octet-stream"

# ISO base media (MP4, HEIF, AVIF...): "ftyp" at offset 4, then the major brand.
_FTYP_BRANDS = {
    b"avif": "image/avif", b"avis": "image/avif",
    b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
}

# (offset, magic, type) checked in order; the first match wins.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"MZ", "application/x-msdownload"),
)

# Every type detect() can return: the only ones a FileField may name.
KNOWN_TYPES = frozenset(
    {t for _, _, t in _SIGNATURES} | set(_FTYP_BRANDS.values())
    | {"image/webp", "audio/wav", "video/webm", "video/x-matroska", "video/mp4", "audio/mpeg"})

IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic")
VIDEOS = ("video/mp4", "video/webm", "video/quicktime")


def detect(head: bytes) -> str:
    """The type of a file that starts with `head` (its first HEAD_SIZE bytes, or all of it if shorter)."""
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":   # EBML: Matroska, or WebM when its DocType says so
        return "video/webm" if b"webm" in head[:HEAD_SIZE] else "video/x-matroska"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:   # MPEG audio frame sync
        return "audio/mpeg"
    return OCTET_STREAM


def inline(kind: str) -> bool:
    """May a browser show it in place (an <img>, a <video>)? Anything else is served as a download."""
    return kind.startswith(("image/", "video/", "audio/")) or kind == "application/pdf"
