"""Settings read from LOUPE_* environment variables; imports nothing from app."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOUPE_")

    data: Path = Path("./loupe-data")
    # Bigger images are refused before decoding: a 20,000 x 20,000 PNG is a few
    # kilobytes on disk and gigabytes in memory (decompression bomb).
    max_pixels: int = 80_000_000
    max_file_bytes: int = 200 * 1024 * 1024
    max_zip_bytes: int = 8 * 1024 * 1024 * 1024
    max_zip_entries: int = 200_000
    thumb_size: int = 256
    preview_size: int = 1280
    # Worker: how often it beats, and when a silent worker's job is taken back.
    heartbeat_s: float = 2.0
    stale_after_s: float = 30.0
    poll_s: float = 1.0
    # Unlabelled images the final model predicts per job (labelling suggestions).
    max_suggestions: int = 20_000
    # Share of labels older than a day that come back blind for an audit (quality page).
    audit_share: float = 0.05
    # Anything but loopback needs this token (see app.web.auth).
    token: str | None = None

    @cached_property
    def data_dir(self) -> Path:
        return self.data.expanduser().resolve()

    @property
    def database_path(self) -> Path:
        return self.data_dir / "loupe.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database_path}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    @property
    def previews_dir(self) -> Path:
        return self.data_dir / "previews"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.store_dir, self.thumbs_dir, self.previews_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
