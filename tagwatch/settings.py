"""One typed settings class, read from ``TAGWATCH_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA = REPO_ROOT / "data" / "stackoverflow" / "questions.csv.gz"

# Values that stand for "set a real secret here": .env.example's, and the usual ones. Compared case-insensitively;
# anything that starts with "change-me" or "changeme" counts too.
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeit", "password", "secret", "postgres", "admin", "tagwatch"})


def placeholder_reason(secret: str | None) -> str | None:
    """Why ``secret`` is not a real secret (empty or a placeholder), or None when it may be one."""
    if secret is None or not secret.strip():
        return "is empty"
    value = secret.strip().lower()
    if value.startswith(("change-me", "changeme")) or value in PLACEHOLDER_SECRETS:
        return f"is the placeholder {secret!r}"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAGWATCH_", env_file=None, extra="ignore")

    # "production" (the compose stack sets it): refuse to start with an empty or placeholder database password.
    environment: Literal["local", "production"] = "local"

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

    # Service input limits: enforced before parsing (bytes, time, requests in flight), then by the schemas.
    # A request body of at most this many bytes; the default fits one question at its limits in any JSON encoding
    # (300 + 60,000 characters, 12 bytes each as escaped surrogate pairs = 724 KB).
    max_request_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    # Seconds a client may take to send its body (slow senders hold a slot): 408 after that.
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Requests served at once by one process; more get 503 with Retry-After (probes and /metrics never do).
    # Bounds the worst-case memory: ~15 MiB per 1 MiB request in flight (bench/results/memory.md).
    max_concurrent_requests: int = Field(default=32, ge=1)
    max_title_chars: int = Field(default=300, ge=10, le=10_000)
    max_body_chars: int = Field(default=60_000, ge=100, le=1_000_000)
    max_batch_size: int = Field(default=256, ge=1, le=10_000)
    # Title and body characters of all the questions of one /predict/batch together.
    max_batch_chars: int = Field(default=500_000, ge=1_000)
    max_feedback_tags: int = Field(default=10, ge=1, le=100)
    # How often the service checks whether the champion alias moved.
    reload_interval_seconds: float = Field(default=5.0, gt=0)
    # Run Alembic migrations when the service starts (the compose stack runs them in a one-shot init instead).
    auto_migrate: bool = True
    # Tags named in metric labels: the N most frequent of the model's vocabulary, the rest as "other".
    metrics_top_tags: int = Field(default=20, ge=1, le=200)

    # Request log writer
    log_queue_size: int = Field(default=10_000, ge=1)
    # Estimated memory of the rows held (queue and the batch being written or retried); more goes to the spill file.
    log_queue_bytes: int = Field(default=64 * 1_048_576, ge=1_048_576)
    log_flush_interval_seconds: float = Field(default=0.5, gt=0)
    log_batch_size: int = Field(default=2_000, ge=1)
    log_enabled: bool = True
    # Cap of the spill files on disk (this process's and leftovers in the spill dir): rows beyond it are dropped.
    spill_max_bytes: int = Field(default=1_073_741_824, ge=0)
    # On shutdown, seconds the writer may spend writing what it holds before spilling the rest. The container's
    # stop grace period must cover it plus the in-flight requests (compose: stop_grace_period).
    log_drain_seconds: float = Field(default=20.0, gt=0)

    # Monitor: schedule and window
    monitor_interval_seconds: float = Field(default=300.0, gt=0)
    monitor_host: str = "127.0.0.1"
    monitor_port: int = Field(default=9108, ge=0, le=65535)
    # The window: the newest `window_size` requests, within the last `window_seconds` when set.
    window_size: int = Field(default=1_000, ge=10)
    window_seconds: float | None = Field(default=None, gt=0)
    # Windows smaller than this are skipped (not measured).
    min_window: int = Field(default=200, ge=1)
    # Detection thresholds and minimum sizes; unset: the measured defaults of monitor.detect.Thresholds
    drift_text_auc: float | None = Field(default=None, ge=0.5, lt=1.0)
    drift_f1_drop: float | None = Field(default=None, gt=0, le=1)
    drift_emerging_share: float | None = Field(default=None, gt=0, le=1)
    drift_importance_drop: float | None = Field(default=None, gt=0, le=2)
    drift_min_current: int | None = Field(default=None, ge=1)
    drift_min_feedback: int | None = Field(default=None, ge=1)
    # Policy
    drift_confirmations: int = Field(default=2, ge=1)
    retrain_cooldown_windows: int = Field(default=3, ge=0)
    retrain_cooldown_seconds: float = Field(default=0.0, ge=0)
    # After a drift-triggered promotion, retrain again every N windows, M times (each challenger must still win).
    retrain_followup_windows: int = Field(default=2, ge=1)
    retrain_max_followups: int = Field(default=3, ge=0)
    auto_retrain: bool = True
    # Retrain and promotion
    retrain_window: int = Field(default=4_000, ge=100)
    retrain_min_labelled: int = Field(default=300, ge=50)
    retrain_holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    retrain_max_holdout: int | None = Field(default=250, ge=50)
    retrain_reference_ratio: float = Field(default=0.5, ge=0)
    # The promoted model's drift reference: the newest questions of its data window, at most this many.
    retrain_reference_size: int = Field(default=1_000, ge=100)
    promotion_min_improvement: float = Field(default=0.01, ge=0)
    promotion_max_tag_regression: float = Field(default=0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'tagwatch.db'}"
        if self.registry_url is None:
            self.registry_url = f"sqlite:///{self.home / 'registry.db'}"
        if self.environment == "production":
            self._refuse_placeholder_passwords()
        return self

    def _refuse_placeholder_passwords(self) -> None:
        from sqlalchemy.engine import make_url

        urls = {"TAGWATCH_DATABASE_URL": self.database_url, "TAGWATCH_REGISTRY_URL": self.registry_url}
        for variable, url in urls.items():
            parsed = make_url(str(url))
            if parsed.drivername.startswith("sqlite"):
                continue
            reason = placeholder_reason(parsed.password if isinstance(parsed.password, str) else None)
            if reason is not None:
                # The compose stack builds both URLs from POSTGRES_PASSWORD: name the variable users set.
                raise ValueError(
                    f"the database password in {variable} {reason}: set POSTGRES_PASSWORD in .env to a real secret "
                    "(TAGWATCH_ENVIRONMENT=production refuses empty and placeholder passwords)"
                )

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
