"""Thumbnails of image files, in the sizes a FileField declares (PocketBase's grammar):

    WxH    crop to the centre, then scale to exactly WxH
    WxHt   the same, cropping from the top;  WxHb  from the bottom
    WxHf   fit inside WxH, keeping the ratio, without cropping
    Wx0    W wide, keeping the ratio;  0xH  H high, keeping the ratio

A thumbnail is made on its first request (files.url, files.download with `thumb`) from PNG, JPEG, GIF (its first
frame) and WebP, in a worker thread (never on the event loop), at most MAX_AT_ONCE at a time per process, and stored
beside the original under `<key>_<size>`; the sweeper removes it with the original. Anything Pillow cannot open is
refused (BAD_REQUEST "not an image") rather than answered with the original: a client asked for a small picture,
and a silent multi-megabyte answer is worse than a clear error. An image of more than MAX_PIXELS pixels is refused
from its header, before any pixel is decoded (a decompression bomb costs nothing but its upload).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

MAX_PIXELS = 50_000_000      # 50 megapixels: about 200 MB decoded at 4 bytes a pixel, the most one decode may take
MAX_AT_ONCE = 2              # thumbnails made at once in one process (each a worker thread)
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})([tbf]?)")
MAX_SIDE = 4096


class NotAnImage(Exception):
    """Pillow cannot open it, or it is too large to decode."""


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    mode: str   # "" (centre), "t", "b", "f"


def parse_size(text: str) -> Size:
    """A declared size; ValueError naming it when it does not follow the grammar."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"thumb size {text!r} is not WxH, Wx0 or 0xH with an optional t, b or f")
    width, height, mode = int(match[1]), int(match[2]), match[3]
    if (width == 0 and height == 0) or width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"thumb size {text!r}: sides are 0..{MAX_SIDE} and not both 0")
    if mode and (width == 0 or height == 0):
        raise ValueError(f"thumb size {text!r}: t, b and f need both sides")
    return Size(width, height, mode)


def thumb_key(key: str, size: str) -> str:
    return f"{key}_{size}"


# What a thumbnail is saved as, by what its original is.
OUTPUT = {"image/png": ("PNG", "image/png"), "image/jpeg": ("JPEG", "image/jpeg"),
          "image/gif": ("PNG", "image/png"), "image/webp": ("WEBP", "image/webp")}


def output_type(source_type: str) -> str:
    return OUTPUT.get(source_type, ("PNG", "image/png"))[1]


def make(data: bytes, size_text: str, source_type: str) -> bytes:
    """The thumbnail of `data` at `size_text`. Blocking and CPU-bound: run it in a worker thread."""
    from PIL import Image

    size = parse_size(size_text)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS   # Pillow's own guard agrees with ours
    try:
        image = Image.open(io.BytesIO(data))   # reads the header only
    except Image.DecompressionBombError:
        raise NotAnImage(f"the image has too many pixels; thumbnails are made of at most {MAX_PIXELS}") from None
    except Exception:
        raise NotAnImage("not an image") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise NotAnImage(f"the image has {width}x{height} pixels; thumbnails are made of at most {MAX_PIXELS}")
    try:
        image.seek(0)   # a GIF's (or animated WebP's) first frame
        if image.format == "JPEG":
            image.draft("RGB", (max(size.width, 1), max(size.height, 1)))   # decode at a reduced scale when it can
        image.load()
        thumb = _resize(image, size)
    except NotAnImage:
        raise
    except Exception:
        raise NotAnImage("not an image (it cannot be decoded)") from None
    fmt, _ = OUTPUT.get(source_type, ("PNG", "image/png"))
    if fmt == "JPEG" and thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    elif fmt == "PNG" and thumb.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        thumb = thumb.convert("RGBA")
    out = io.BytesIO()
    thumb.save(out, fmt)
    return out.getvalue()


def _resize(image, size: Size):
    from PIL import Image, ImageOps

    width, height = image.size
    if size.width == 0:
        target = (max(1, round(width * size.height / height)), size.height)
        return image.resize(target, Image.LANCZOS)
    if size.height == 0:
        target = (size.width, max(1, round(height * size.width / width)))
        return image.resize(target, Image.LANCZOS)
    if size.mode == "f":
        copy = image.copy()
        copy.thumbnail((size.width, size.height), Image.LANCZOS)
        return copy
    centering = {"": (0.5, 0.5), "t": (0.5, 0.0), "b": (0.5, 1.0)}[size.mode]
    return ImageOps.fit(image, (size.width, size.height), Image.LANCZOS, centering=centering)
