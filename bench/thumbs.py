"""Thumbnail making time per size: `python -m bench.thumbs [--rounds 5]`.

What one making costs the worker thread that does it (hapta/files/thumbs.py `make`: open, decode, resize, encode),
without a gateway or storage: the median of `--rounds` makings of each size from a 4000x3000 JPEG (a 12 Mpx photo)
and a 1920x1080 PNG, both of noise over a gradient (a photo's entropy, not a flat colour's). Writes
bench/results/thumbs.md (see docs/files.md).
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image

from hapta.files.thumbs import make

SIZES = ("100x100", "480x0", "0x300", "120x80t", "200x50f")


def picture(fmt: str, width: int, height: int) -> bytes:
    noise = Image.effect_noise((width, height), 64).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sources = [("JPEG 4000x3000", picture("JPEG", 4000, 3000), "image/jpeg"),
               ("PNG 1920x1080", picture("PNG", 1920, 1080), "image/png")]
    lines = ["| source | bytes | " + " | ".join(SIZES) + " |", "|---|---:|" + "---:|" * len(SIZES)]
    for label, data, kind in sources:
        cells = []
        for size in SIZES:
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                make(data, size, kind)
                times.append(time.perf_counter() - started)
            cells.append(f"{statistics.median(times) * 1000:.0f} ms")
        lines.append(f"| {label} | {len(data):,} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "thumbs.md").write_text(table)


if __name__ == "__main__":
    main()
