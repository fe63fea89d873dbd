"""`python -m bench.files [--mib 1024] [--backends local,s3]`: one big file up and down over the socket.

For each backend (local disk, and S3 = a private SeaweedFS on this machine) it starts a fresh database and a
gateway serving bench/files_app.py, uploads one file of --mib MiB with hapta.client (keeping to the window), then
downloads it, and reports MB/s for each direction and the gateway process's peak RSS growth over its RSS before
each transfer (sampled every 20 ms from /proc), and the CPU time the gateway and this client used per GiB. The data is a 1 MiB random block repeated, generated as it is sent:
the bench never holds the file. The upload's sha256 (computed by the gateway on the way) and the download's (computed
here) are checked against the expected one.

Then a resumable upload against a streamed one, side by side: the same file through a TCP proxy on this machine,
once uncut, once cut when 60% was sent (the proxy drops the socket), signed in again on a new socket and resumed
with files.upload {resume}; MB/s over the whole time from the first byte to the finish (the reconnect, the sign-in
and the bytes sent again included). Writes a markdown table to bench/results/files.md.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import AsyncIterator

from hapta.client import Client
from tests.conftest import PASSWORD
from tests.files.conftest import assemble_app, start_files_gateway, stop_files_gateway
from tests.services import CuttableProxy, SeaweedS3, admin_dsn, rss_bytes

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "files.md"
MIB = 1024 * 1024
CHUNK = 256 * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssPeak:
    """The highest RSS of a process while running, sampled in a thread (the event loop is busy moving bytes)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.running = pid, rss_bytes(pid), True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak


async def source(block: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(block)
    sent = 0
    while sent < size:
        for start in range(0, len(block), CHUNK):
            piece = bytes(view[start:min(start + CHUNK, start + size - sent)])
            if not piece:
                return
            sent += len(piece)
            yield piece
            if sent >= size:
                return


class Repeated:
    """A seekable file of `size` bytes that is `block` repeated, made as it is read (a resume seeks past what the
    gateway kept)."""

    def __init__(self, block: bytes, size: int):
        self.block, self.size, self.at = block, size, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = offset if whence == 0 else self.at + offset
        return self.at

    def tell(self) -> int:
        return self.at

    def read(self, n: int) -> bytes:
        n = min(n, self.size - self.at)
        start = self.at % len(self.block)
        piece = (self.block[start:] + self.block)[:n] if start + n > len(self.block) else self.block[start:start + n]
        self.at += len(piece)
        return piece


async def resumable(gateway, email: str, post: str, block: bytes, size: int, expected: str) -> dict:
    """MB/s of one upload through a proxy, uncut, and of one cut at 60% and resumed on a new socket."""
    proxy = await CuttableProxy("127.0.0.1", gateway.process.port).start()
    try:
        async with await Client.connect(f"ws://127.0.0.1:{proxy.port}/ws") as client:
            await client.call("auth.login", {"identity": email, "password": PASSWORD})
            started = time.perf_counter()
            done = await client.upload("posts", post, "attachments", "big.bin", Repeated(block, size), size=size)
            uncut_s = time.perf_counter() - started
            assert done["file"]["sha256"] == expected
        proxy.cut_after(int(size * 0.6))
        opened: dict = {}
        started = time.perf_counter()
        client = await Client.connect(f"ws://127.0.0.1:{proxy.port}/ws")
        await client.call("auth.login", {"identity": email, "password": PASSWORD})
        try:
            await client.upload("posts", post, "attachments", "big.bin", Repeated(block, size), size=size,
                                opened=opened.update)
            raise AssertionError("the proxy did not cut the upload")
        except Exception as exc:   # the cut: the connection is gone
            if isinstance(exc, AssertionError) or "upload_id" not in opened:
                raise
        finally:
            await client.close()
        async with await Client.connect(f"ws://127.0.0.1:{proxy.port}/ws") as client:
            await client.call("auth.login", {"identity": email, "password": PASSWORD})
            answer: dict = {}
            while True:   # the gateway may still be keeping it (UNAVAILABLE, retry_after): try again
                try:
                    done = await client.upload("posts", post, "attachments", "big.bin", Repeated(block, size), size=size,
                                               resume=opened["upload_id"], opened=answer.update)
                    break
                except Exception as exc:
                    if getattr(exc, "code", None) != "UNAVAILABLE":
                        raise
                    await asyncio.sleep(getattr(exc, "retry_after", None) or 0.2)
            resumed_s = time.perf_counter() - started
            assert done["file"]["sha256"] == expected, "the resumed upload stored other bytes"
    finally:
        await proxy.cut()
    return {"uncut": size / uncut_s / 1e6, "resumed": size / resumed_s / 1e6, "kept": answer["received"] / size}


def expected_sha256(block: bytes, size: int) -> str:
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(block))
    for _ in range(whole):
        digest.update(block)
    digest.update(block[:rest])
    return digest.hexdigest()


def disk_ceiling(folder: Path, block: bytes, size: int) -> float:
    """MB/s of the same bytes hashed and written by a plain loop to the same folder, then fsynced: what the disk
    (and this machine, now) allows at best. The local backend's upload row is to be read against it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ceiling.bin"
    digest, written = hashlib.sha256(), 0
    started = time.perf_counter()
    with open(path, "wb") as file:
        while written < size:
            piece = block[:size - written]
            digest.update(piece)
            file.write(piece)
            written += len(piece)
        file.flush()
        os.fsync(file.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    return size / seconds / 1e6


async def run_backend(backend: str, size: int, block: bytes, seaweed: SeaweedS3 | None, admin: str) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"hapta-bench-files-{backend}-"))
    config = assemble_app(folder / "app", HERE / "files_app.py")
    gateway = await start_files_gateway(backend, admin, config, folder / "data", seaweed)
    try:
        async with await Client.connect(gateway.url) as client:
            session = await client.call("auth.register", {"email": f"bench-{backend}@example.com",
                                                          "password": PASSWORD})
            post = (await client.call("records.create", {"collection": "posts", "data": {
                "author": session["user"]["id"], "text": "bench"}}))["id"]
            await client.upload("posts", post, "attachments", "warmup.bin", block)   # code paths warm
            await client.download_bytes("posts", post, "attachments", "warmup.bin")
            expected = expected_sha256(block, size)
            pid = gateway.process.proc.pid
            baseline = rss_bytes(pid)

            peak, cpu, mine = RssPeak(pid), cpu_seconds(pid), cpu_seconds(os.getpid())
            started = time.perf_counter()
            done = await client.upload("posts", post, "attachments", "big.bin", source(block, size), size=size)
            upload_s = time.perf_counter() - started
            upload_peak, upload_cpu = peak.stop(), cpu_seconds(pid) - cpu
            client_upload_cpu = cpu_seconds(os.getpid()) - mine
            assert done["file"]["sha256"] == expected, "the gateway stored other bytes"

            before_download = rss_bytes(pid)
            peak, cpu, mine = RssPeak(pid), cpu_seconds(pid), cpu_seconds(os.getpid())
            digest, received = hashlib.sha256(), 0
            started = time.perf_counter()
            async for chunk in client.download("posts", post, "attachments", "big.bin"):
                digest.update(chunk)
                received += len(chunk)
            download_s = time.perf_counter() - started
            download_peak, download_cpu = peak.stop(), cpu_seconds(pid) - cpu
            client_download_cpu = cpu_seconds(os.getpid()) - mine
            assert received == size and digest.hexdigest() == expected, "the download differs"
            resume = await resumable(gateway, f"bench-{backend}@example.com", post, block, size, expected)
        ceiling = disk_ceiling(folder / "data", block, size) if backend == "local" else None
    finally:
        await stop_files_gateway(gateway, admin)
        shutil.rmtree(folder, ignore_errors=True)
    return {"backend": backend, "ceiling": ceiling, "upload": size / upload_s / 1e6, "download": size / download_s / 1e6,
            "upload_cpu": upload_cpu / (size / 1024 ** 3), "download_cpu": download_cpu / (size / 1024 ** 3),
            "client_upload_cpu": client_upload_cpu / (size / 1024 ** 3),
            "client_download_cpu": client_download_cpu / (size / 1024 ** 3),
            "upload_rss": (upload_peak - baseline) / MIB, "download_rss": (download_peak - before_download) / MIB,
            "baseline": baseline / MIB, **resume}


def table(rows: list[dict], size: int) -> str:
    lines = [f"One file of {size // MIB} MiB over one socket (JSON mode, chunks of 256 KiB, window 4 MiB); "
             f"{os.cpu_count()} cores, Python {platform.python_version()}.", "",
             "| backend | upload MB/s | download MB/s | peak RSS growth, upload | peak RSS growth, download "
             "| gateway CPU s/GiB, up / down | client CPU s/GiB, up / down |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['upload']:.0f} | {r['download']:.0f} | {r['upload_rss']:.1f} MiB | "
                     f"{r['download_rss']:.1f} MiB | {r['upload_cpu']:.2f} / {r['download_cpu']:.2f} | "
                     f"{r['client_upload_cpu']:.2f} / {r['client_download_cpu']:.2f} |")
    for r in rows:
        if r["ceiling"]:
            lines.append(f"| *{r['backend']} disk, plain write + sha256 + fsync* | *{r['ceiling']:.0f}* | | | | | |")
    baselines = ", ".join(f"{r['backend']}: {r['baseline']:.0f} MiB" for r in rows)
    lines += ["", "The same file through a TCP proxy on this machine: uncut, and cut when 60% was sent, then signed in "
              "again on a new socket and resumed (MB/s over the whole time, reconnect and bytes sent again included).",
              "", "| backend | streamed, uncut MB/s | cut at 60% and resumed MB/s | resumed ÷ streamed "
              "| kept by storage at the cut |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['uncut']:.0f} | {r['resumed']:.0f} | {r['resumed'] / r['uncut']:.2f} | "
                     f"{r['kept']:.0%} |")
    lines += ["", f"RSS growth is over the gateway process's RSS just before each transfer (before the upload: "
                  f"{baselines}). Load average at the end: {os.getloadavg()[0]:.1f}."]
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--backends", default="local,s3")
    args = parser.parse_args()
    size, backends = args.mib * MIB, args.backends.split(",")
    block = os.urandom(MIB)
    admin = await admin_dsn()
    seaweed = await asyncio.to_thread(SeaweedS3().start) if "s3" in backends else None
    try:
        rows = [await run_backend(b, size, block, seaweed, admin) for b in backends]
    finally:
        if seaweed is not None:
            seaweed.stop()
    text = table(rows, size)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
