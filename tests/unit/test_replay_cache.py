"""A parsed recording is kept on disk: a new process loads it without parsing; a changed file or parser, or
other sampling settings, are parsed again."""

import gzip
import os

import pytest
from django.conf import settings

from apps.replay import recording as rec


@pytest.fixture
def cache(tmp_path, settings):
    settings.REPLAY_CACHE_DIR = str(tmp_path / "cache")
    rec._cached_parse.cache_clear()
    rec.recording_load.cache_clear()
    yield tmp_path / "cache"
    rec._cached_parse.cache_clear()
    rec.recording_load.cache_clear()


@pytest.fixture
def small_recording(tmp_path):
    with gzip.open(settings.REPLAY_DIR / "spot_ethusdt_20240808.gz", "rb") as src:
        lines = [src.readline() for _ in range(5_000)]
    path = tmp_path / "spot_ethusdt_small.gz"
    with gzip.open(path, "wb") as out:
        out.writelines(lines)
    return str(path)


def load(path: str, sample_ms: int = 1_000) -> rec.Recording:
    rec.recording_load.cache_clear()  # as a new process would: only the disk cache is left
    return rec.recording_load((path,), sample_ms, (0.5, 1.0))


def counting_parse(monkeypatch) -> list:
    calls = []
    real = rec._parse

    def parse(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(rec, "_parse", parse)
    return calls


def test_a_second_process_loads_the_parsed_recording_without_parsing(cache, small_recording, monkeypatch):
    calls = counting_parse(monkeypatch)
    first = load(small_recording)
    assert len(calls) == 1 and len(first.trade_ids) > 0 and any(cache.rglob("*.pkl"))
    again = load(small_recording)
    assert len(calls) == 1
    assert again.trade_prices == first.trade_prices and again.book_samples == first.book_samples
    assert (again.trade_clock == first.trade_clock).all() and (again.trade_sells == first.trade_sells).all()


def test_a_changed_file_parser_or_setting_is_parsed_again(cache, small_recording, monkeypatch):
    calls = counting_parse(monkeypatch)
    load(small_recording)
    load(small_recording, sample_ms=500)
    assert len(calls) == 2
    stat = os.stat(small_recording)
    os.utime(small_recording, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    load(small_recording)
    assert len(calls) == 3
    monkeypatch.setattr(rec, "_parser_version", lambda: "another parser")
    load(small_recording)
    assert len(calls) == 4


def test_without_a_cache_directory_nothing_is_written(settings, tmp_path, small_recording, monkeypatch):
    settings.REPLAY_CACHE_DIR = ""
    rec._cached_parse.cache_clear()
    try:
        calls = counting_parse(monkeypatch)
        load(small_recording)
        load(small_recording)
        assert len(calls) == 2
    finally:
        rec._cached_parse.cache_clear()
        rec.recording_load.cache_clear()
