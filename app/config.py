"""Settings read from LOUPE_* environment variables; imports nothing from app."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# The local store's folders under the data directory. An image's keys (app.images.store) begin with
# them, so a key is also the file's path relative to the data directory, and the same key names it in S3.
ORIGINALS, THUMBS, PREVIEWS = "store", "thumbs", "previews"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOUPE_")

    data: Path = Path("./loupe-data")
    # Unset: the SQLite file in the data directory. A postgresql:// URL lets workers on
    # other machines share one database (they must share the data directory's files too).
    database_url: str = ""
    # Unset: originals, thumbnails and previews live under the data directory. `s3://bucket/prefix`:
    # in an S3-compatible bucket that every machine reaches (pip install 'loupe[s3]'); credentials come
    # from the usual AWS_* variables, the server from s3_endpoint_url when it is not AWS.
    store_url: str = ""
    s3_endpoint_url: str = ""
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
    # A pretrained backbone's state_dict (.pth) for embed jobs, e.g. resnet18's ImageNet weights. Unset: the file
    # torchvision would download into its cache (torch.hub, checkpoints/), which is only looked for: nothing is
    # ever downloaded. Without either, embed jobs fail in one sentence and search uses the train jobs' embeddings.
    embed_weights: Path | None = None
    # Unlabelled images the final model predicts per job (labelling suggestions).
    max_suggestions: int = 20_000
    # Share of labels older than a day that come back blind for an audit (quality page).
    audit_share: float = 0.05
    # Up to this many images the quality and health pages compute their duplicate and health reports on each
    # view; above, they show the newest stored result of a "report" job and how much changed since
    # (app.quality.results). The live reports read every image: 139 ms at 2,000 images, 345 ms at 5,000,
    # 1.0 s at 20,000 (bench/scale.py's rows, 2 cores with other work running), so 1,000 keeps a view
    # under 100 ms.
    quality_live_max: int = 1_000
    # Where `loupe serve` listens. Beyond loopback, logins are required (app.web.auth).
    host: str = "127.0.0.1"
    # "auto": no login on loopback; "required": log in even there.
    login: Literal["auto", "required"] = "auto"
    session_days: float = 7.0
    # Failed logins per (user name, client address) in the window before logins are refused.
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_window_s: int = 300
    # Retired shared secret (replaced by users and API tokens): `loupe serve` refuses to start while it is set.
    token: str | None = None

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        url = self.database_url
        if not url:
            url = f"sqlite:///{self.data.expanduser().resolve() / 'loupe.db'}"
        elif url.split("://", 1)[0] in ("postgres", "postgresql"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, not SQLAlchemy's default psycopg2
        self.database_url = url
        store = self.store_url.strip()
        if store and (not store.startswith("s3://") or not store[5:].split("/", 1)[0]):
            raise ValueError(f"LOUPE_STORE_URL must be s3://BUCKET[/PREFIX], or unset for the data directory; "
                             f"not {store!r}")
        self.store_url = store.rstrip("/")
        return self

    @property
    def login_required(self) -> bool:
        return self.login == "required" or not is_loopback(self.host)

    @cached_property
    def data_dir(self) -> Path:
        return self.data.expanduser().resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def database_path(self) -> Path:
        """The SQLite file (meaningful only when is_sqlite)."""
        return Path(self.database_url.split(":///", 1)[1]) if self.is_sqlite else self.data_dir / "loupe.db"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / ORIGINALS

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / THUMBS

    @property
    def previews_dir(self) -> Path:
        return self.data_dir / PREVIEWS

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def cache_dir(self) -> Path:
        """A worker's local copies of originals from a remote store (content-addressed: never stale)."""
        return self.data_dir / "cache"

    def ensure_dirs(self) -> None:
        local_store = () if self.store_url else (self.store_dir, self.thumbs_dir, self.previews_dir)
        for d in (self.data_dir, *local_store, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
