"""data.binance.vision archives: which files cover a date range, and fetching them verified.

Layout (BINANCE_VISION_URL, default https://data.binance.vision):
``data/spot/monthly/klines/BTCUSDT/5m/BTCUSDT-5m-2024-01.zip``, daily
``data/spot/daily/klines/BTCUSDT/5m/BTCUSDT-5m-2024-01-01.zip``, aggTrades
``data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01.zip``; USD-M futures under
``data/futures/um/``. Each archive has a ``.CHECKSUM`` beside it ("<sha256 hex>  <name>").

Downloads land in BACKFILL_DIR under the same relative path. A file is only ever used after its
checksum matched; a verified file is never fetched again, and a download cut short continues from
where it stopped (HTTP Range) on the next run. Retries (429 with Retry-After, 5xx, dropped
connections) are urllib3's :class:`~urllib3.util.retry.Retry`.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

MARKETS = {"spot": "data/spot", "usdm": "data/futures/um"}
KINDS = ("klines", "aggTrades")
CHUNK = 1 << 16
_SYMBOL = re.compile(r"[A-Z0-9]{2,30}\Z")
_CHECKSUM = re.compile(r"([0-9a-fA-F]{64})\s+\*?(\S+)\s*\Z")


class ArchiveProblem(Exception):
    """An archive that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class Archive:
    """One archive file: monthly (with the daily archives that stand in for it) or daily."""

    path: str  # relative to the base URL and to BACKFILL_DIR
    days: tuple[Archive, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def archive_plan(*, market: str, symbol: str, kind: str, interval: str, start: date, end: date) -> list[Archive]:
    """The archives covering the days [start, end]: monthly for whole months, daily for the rest."""
    if market not in MARKETS or kind not in KINDS:
        raise ValueError(f"unknown market {market!r} or kind {kind!r}")
    if not _SYMBOL.match(symbol):
        raise ValueError(f"not a Binance symbol: {symbol!r}")
    folder = f"{MARKETS[market]}/{{period}}/{kind}/{symbol}" + (f"/{interval}" if kind == "klines" else "")
    stem = f"{symbol}-{interval if kind == 'klines' else 'aggTrades'}"

    def daily(day: date) -> Archive:
        return Archive(f"{folder.format(period='daily')}/{stem}-{day:%Y-%m-%d}.zip")

    plan: list[Archive] = []
    first = start.replace(day=1)
    while first <= end:
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        days = [first + timedelta(days=i) for i in range(last.day)]
        if start <= first and last <= end:
            plan.append(Archive(f"{folder.format(period='monthly')}/{stem}-{first:%Y-%m}.zip",
                                tuple(daily(d) for d in days)))
        else:
            plan.extend(daily(d) for d in days if start <= d <= end)
        first = last + timedelta(days=1)
    return plan


def vision_session() -> requests.Session:
    """HTTP with retries on 429 (after its Retry-After), 5xx and dropped connections."""
    retry = Retry(total=settings.BACKFILL_RETRIES, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False,
                  retry_after_max=settings.BACKFILL_RETRY_AFTER_MAX)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_sha256(checksum: Path, name: str) -> str:
    match = _CHECKSUM.match(checksum.read_text(encoding="ascii", errors="replace").strip())
    if not match:
        raise ArchiveProblem(f"{name}: its CHECKSUM file is not '<sha256>  <name>'; the archive was not used")
    if match.group(2) != name:
        raise ArchiveProblem(f"{name}: its CHECKSUM file names {match.group(2)}; the archive was not used")
    return match.group(1).lower()


def archive_local(archive: Archive) -> Path:
    return Path(settings.BACKFILL_DIR) / archive.path


def archive_fetch(*, session: requests.Session, archive: Archive,
                  progress: Callable[[int, int | None], None] = lambda done, total: None) -> tuple[Path, bool] | None:
    """The archive on disk, its checksum verified: (path, whether it was downloaded now); None if not published.

    Raises ArchiveProblem (the file was not kept) on a checksum mismatch, an HTTP error or a cut download.
    """
    local = archive_local(archive)
    checksum = local.with_name(local.name + ".CHECKSUM")
    if local.exists() and checksum.exists():
        if _sha256(local) == _expected_sha256(checksum, archive.name):
            return local, False
        local.unlink()  # damaged on disk since: fetch it again
    local.parent.mkdir(parents=True, exist_ok=True)
    if not _download(session, archive.path + ".CHECKSUM", checksum):
        return None
    expected = _expected_sha256(checksum, archive.name)
    partial = local.with_name(local.name + ".part")
    if not _download(session, archive.path, partial, resume=True, progress=progress):
        checksum.unlink()
        return None
    got = _sha256(partial)
    if got != expected:
        partial.unlink()
        checksum.unlink()
        raise ArchiveProblem(f"{archive.name}: checksum mismatch (sha256 {got[:16]}..., its CHECKSUM says"
                             f" {expected[:16]}...); the file was refused and nothing of it imported")
    partial.replace(local)
    return local, True


def _download(session: requests.Session, path: str, target: Path, *, resume: bool = False,
              progress: Callable[[int, int | None], None] = lambda done, total: None) -> bool:
    """GET base/path into target; False on 404. With `resume`, a partial target continues (HTTP Range)."""
    url = f"{settings.BINANCE_VISION_URL.rstrip('/')}/{path}"
    have = target.stat().st_size if resume and target.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    name = path.rsplit("/", 1)[1]
    try:
        with session.get(url, headers=headers, stream=True, timeout=settings.BACKFILL_TIMEOUT) as response:
            if response.status_code == 404:
                return False
            if response.status_code == 416 and have:  # the partial file is whole already (or longer): start over
                target.unlink()
                return _download(session, path, target, resume=resume, progress=progress)
            if response.status_code not in (200, 206):
                raise ArchiveProblem(f"{name}: HTTP {response.status_code} from {url}")
            appending = response.status_code == 206
            done = have if appending else 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length and length.isdigit() else None
            with open(target, "ab" if appending else "wb") as fh:
                for chunk in response.iter_content(CHUNK):
                    fh.write(chunk)
                    done += len(chunk)
                    progress(done, total)
    except requests.RequestException as exc:
        kept = target.stat().st_size if target.exists() else 0
        raise ArchiveProblem(f"{name}: download failed after {kept:,} bytes ({type(exc).__name__}); run the"
                             " backfill again to continue it") from exc
    return True
