"""The import contracts in pyproject.toml ([tool.importlinter]): layers point one way, and no app cycles."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    # Exit code 0: every contract kept (the report names the broken ones and their import chains).
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
