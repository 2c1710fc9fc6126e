"""One typed settings class, read from ``TAGWATCH_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA = REPO_ROOT / "data" / "stackoverflow" / "questions.csv.gz"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAGWATCH_", env_file=None, extra="ignore")

    # Where models, reports, spill files and the embedded databases live.
    home: Path = Field(default_factory=lambda: Path.home() / ".tagwatch")
    # Request log, feedback and drift runs. Default: an SQLite file under home.
    database_url: str | None = None
    # MLflow tracking/registry store. Default: an SQLite file under home.
    registry_url: str | None = None
    model_name: str = "tagwatch"
    data_path: Path = BUNDLED_DATA

    # Model
    top_n_tags: int = Field(default=100, ge=2, le=5000)
    max_tags: int = Field(default=5, ge=1, le=20)
    seed: int = 42

    # Service input limits
    max_title_chars: int = Field(default=300, ge=10)
    max_body_chars: int = Field(default=60_000, ge=100)
    max_batch_size: int = Field(default=256, ge=1)
    # How often the service checks whether the champion alias moved.
    reload_interval_seconds: float = Field(default=5.0, gt=0)
    # Run Alembic migrations when the service starts (the compose stack runs them in a one-shot init instead).
    auto_migrate: bool = True
    # Tags named in metric labels: the N most frequent of the model's vocabulary, the rest as "other".
    metrics_top_tags: int = Field(default=20, ge=1, le=200)

    # Request log writer
    log_queue_size: int = Field(default=10_000, ge=1)
    log_flush_interval_seconds: float = Field(default=0.5, gt=0)
    log_batch_size: int = Field(default=2_000, ge=1)
    log_enabled: bool = True

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'tagwatch.db'}"
        if self.registry_url is None:
            self.registry_url = f"sqlite:///{self.home / 'registry.db'}"
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def tracking_url(self) -> str:
        assert self.registry_url is not None
        return self.registry_url

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def spill_dir(self) -> Path:
        return self.home / "spill"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
