"""Static files with content hashes in their names, compressed once (WhiteNoise serves them for a year)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedCompressedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's storage, with two changes for `make run`, which collects static files under DEBUG:

    - URLs carry the hash under DEBUG too (Django names the plain file then), so browsers may cache them for
      good: a changed file gets a new name;
    - only hashed files are compressed (pages name no other; source maps are for developer tools), each once:
      its name is its content, so the compressed copy made on an earlier run is still right, and a restart
      spends no seconds on Brotli again.
    """

    def url(self, name, force=False):
        return super().url(name, force=True)

    def compress_files(self, paths):
        hashed = set(self.hashed_files.values())
        fresh = [p for p in paths if p in hashed and not p.endswith(".map")
                 and not (self.exists(f"{p}.br") or self.exists(f"{p}.gz"))]
        yield from super().compress_files(fresh)
