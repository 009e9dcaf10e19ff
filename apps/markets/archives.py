"""Lines of a data file, whatever arrives: plain, gzip or zip, whole or damaged (pure, no ORM).

Exchange archives (data.binance.vision and the like) come as CSV inside zip or gzip, often cut
short by a failed download. Readers here never crash: a file that cannot be read at all raises
:class:`FileProblem` with one clear sentence; a file damaged part-way yields every complete line
before the damage and records the damage in :attr:`LineStats.damage`. A line that is not UTF-8
is reported as ``None`` (the caller rejects that row and goes on); a UTF-8 byte-order mark, as
spreadsheet exports write, is dropped.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stream_unzip import UnzipError, stream_unzip

CHUNK = 1 << 20
_ZIP = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"
_GZIP = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class FileProblem(Exception):
    """A file that cannot be read at all; the message is one sentence for the user."""


@dataclass
class LineStats:
    kind: str = ""  # "plain", "gzip" or "zip"
    member: str = ""  # the zip member read
    lines: int = 0  # complete lines read
    damage: str = ""  # why reading stopped early, if it did


def _chunks(fh) -> Iterator[bytes]:
    # read1: what one underlying read gives. A gzip read(n) of a cut stream raises before
    # returning any of the data it had decompressed.
    read = getattr(fh, "read1", fh.read)
    while chunk := read(CHUNK):
        yield chunk


def _zip_chunks(path: Path, stats: LineStats) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        for name, _, chunks in stream_unzip(_chunks(fh)):
            if name.endswith(b"/"):  # a folder entry
                for _ in chunks:
                    pass
                continue
            stats.member = name.decode("utf-8", "replace")
            yield from chunks
            return  # one data file per archive: what data.binance.vision ships
    raise FileProblem(f"{path.name}: the zip archive holds no file")


def _raw_chunks(path: Path, stats: LineStats) -> Iterator[bytes]:
    if path.is_dir():
        raise FileProblem(f"{path}: is a directory, not a data file")
    if not path.exists():
        raise FileProblem(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == _EMPTY_ZIP:
        raise FileProblem(f"{path.name}: the zip archive is empty")
    if magic.startswith(_ZIP):
        stats.kind = "zip"
        return _zip_chunks(path, stats)
    if magic.startswith(_GZIP):
        stats.kind = "gzip"
        return _chunks(gzip.open(path, "rb"))
    stats.kind = "plain"
    return _chunks(open(path, "rb"))


def _split(chunks: Iterable[bytes], stats: LineStats, name: str) -> Iterator[bytes]:
    """Complete lines of the stream; on damage, stop after the last complete line."""
    rest = b""
    first = True
    try:
        for chunk in chunks:
            if first:
                first = False
                if chunk.startswith(_UTF16_BOMS):
                    raise FileProblem(f"{name}: UTF-16 text; save it as UTF-8 (CSV UTF-8)")
                if b"\x00" in chunk[:65536]:
                    raise FileProblem(f"{name}: a binary file, not text")
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM):]
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from lines
    except (EOFError, OSError, zlib.error, UnzipError) as exc:
        # The partial line at the cut is dropped: "61000.5" cut to "610" would read as a price.
        what = {"gzip": "gzip stream", "zip": "zip archive"}.get(stats.kind, "file")
        stats.damage = f"{name}: the {what} is damaged or cut short after line {stats.lines:,} ({_why(exc)})"
        return
    if rest:
        yield rest


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:120] if text else type(exc).__name__


def file_lines(path: str | Path, stats: LineStats) -> Iterator[str | None]:
    """Each line of the file as text without its line ending, None for a line that is not UTF-8.

    Raises FileProblem before the first line for a file that cannot be read at all.
    """
    path = Path(path)
    chunks = _raw_chunks(path, stats)
    for raw in _split(chunks, stats, path.name):
        stats.lines += 1
        try:
            yield raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            yield None
