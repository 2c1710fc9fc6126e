"""One typed settings class, read from ``TAGWATCH_*`` environment variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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


# API keys (TAGWATCH_FEEDBACK_KEYS, TAGWATCH_PREDICT_KEYS): comma-separated name=secret pairs. Names say who sent what
# (stored with every feedback record); secrets are Bearer tokens (RFC 6750 b64token syntax: what `openssl rand
# -base64 32`, `openssl rand -hex 32` and `secrets.token_urlsafe()` give).
API_KEY_VARIABLES = {"feedback_keys": "TAGWATCH_FEEDBACK_KEYS", "predict_keys": "TAGWATCH_PREDICT_KEYS"}
KEY_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
KEY_SECRET_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_API_KEYS = 32
# Production refuses shorter secrets (and placeholders): 16 characters of base64 are 96 bits.
MIN_SECRET_CHARS = 16


class ApiKey(BaseModel):
    """One API key: a short public name (stored with what the key sent) and its secret (never shown)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str = Field(pattern=KEY_NAME_PATTERN.pattern)
    secret: SecretStr


def parse_api_keys(value: Any, variable: str) -> tuple[ApiKey, ...]:
    """``name=secret,name=secret`` (an environment variable), or keys already parsed (a mapping name -> secret, or
    ApiKey objects and their dumps), as ApiKey objects. ValueError names ``variable`` and the entry by its position;
    a key by its name only once the entry is well-formed (a secret written without a name must not be shown as one)."""
    if value is None:
        return ()
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, str):
        if not value.strip():
            return ()
        for position, entry in enumerate(value.split(","), start=1):
            if not entry.strip():
                raise ValueError(f"{variable}: entry {position} is empty (expected name=secret, comma-separated)")
            if "=" not in entry:
                raise ValueError(f"{variable}: entry {position} has no '=' (expected name=secret, comma-separated)")
            name, _, secret = entry.partition("=")
            pairs.append((name.strip(), secret.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, ApiKey):
                pairs.append((item.name, item.secret))
            elif isinstance(item, Mapping) and set(item) == {"name", "secret"}:
                pairs.append((item["name"], item["secret"]))
            else:
                raise ValueError(f"{variable}: expected name=secret pairs, got a {type(item).__name__}")
    else:
        raise ValueError(f"{variable}: expected name=secret pairs separated by commas, got a {type(value).__name__}")
    if len(pairs) > MAX_API_KEYS:
        raise ValueError(f"{variable}: {len(pairs)} keys, at most {MAX_API_KEYS} allowed")
    keys: list[ApiKey] = []
    owners: dict[str, str] = {}  # secret -> name
    for position, (name, raw) in enumerate(pairs, start=1):
        secret = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if not isinstance(name, str) or not KEY_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{variable}: the name of entry {position} is not a key name (1-64 letters, digits, '_', '.', '-')"
            )
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"{variable}: entry {position} has an empty secret (expected name=secret)")
        if not KEY_SECRET_PATTERN.fullmatch(secret):
            raise ValueError(
                f"{variable}: the secret of entry {position} is not a Bearer token: use only letters, digits and "
                "- . _ ~ + / (then '=' padding), e.g. the output of `openssl rand -base64 32`"
            )
        if any(key.name == name for key in keys):
            raise ValueError(f"{variable}: the key name {name!r} appears twice: each key needs a name of its own")
        if secret in owners:
            raise ValueError(f"{variable}: keys {owners[secret]!r} and {name!r} have the same secret")
        owners[secret] = name
        keys.append(ApiKey(name=name, secret=SecretStr(secret)))
    return tuple(keys)


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error never repeats the value it refuses (API keys, database URLs).
    model_config = SettingsConfigDict(env_prefix="TAGWATCH_", env_file=None, extra="ignore", hide_input_in_errors=True)

    # "production" (the compose stack sets it): refuse to start with an empty or placeholder database password.
    environment: Literal["local", "production"] = "local"

    # API keys: "name=secret,name=secret" (two keys at once during a rotation). POST /feedback requires one when set
    # (the service refuses to start in production without); /predict and /predict/batch when TAGWATCH_PREDICT_KEYS
    # is set (open otherwise). Production refuses placeholder secrets and secrets shorter than 16 characters.
    feedback_keys: Annotated[tuple[ApiKey, ...], NoDecode] = ()
    predict_keys: Annotated[tuple[ApiKey, ...], NoDecode] = ()

    # Log lines: "text" (for a terminal; a line written during an API request ends with [request_id=...]) or "json"
    # (one JSON object per line, with the request id of an API request as a field).
    log_format: Literal["text", "json"] = "text"
    # The API logs one line per request (method, path, status, duration, request id; never the body).
    access_log: bool = False

    # Where models, reports, spill files and the embedded databases live.
    home: Path = Field(default_factory=lambda: Path.home() / ".tagwatch")
    # Request log, feedback and drift runs. Default: an SQLite file under home.
    database_url: str | None = None
    # MLflow tracking/registry store. Default: an SQLite file under home.
    registry_url: str | None = None
    model_name: str = "tagwatch"
    data_path: Path = BUNDLED_DATA
    # Passwords of the PostgreSQL roles that `tagwatch init` / `tagwatch migrate` create, as the databases' owner, for
    # the processes of a deployment (tagwatch/roles.py): the API replicas, the monitor, Grafana. Unset: not created.
    api_db_password: SecretStr | None = None
    monitor_db_password: SecretStr | None = None
    grafana_db_password: SecretStr | None = None
    # Their names: <prefix>_api, <prefix>_monitor, <prefix>_grafana (roles are global to a PostgreSQL server).
    db_role_prefix: str = Field(default="tagwatch", pattern=r"^[a-z_][a-z0-9_]{0,40}$")

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
    max_body_chars: int = Field(default=60_000, ge=100, le=1_000_000)  # the longest bundled body: ~38k characters
    max_batch_size: int = Field(default=256, ge=1, le=10_000)
    # Title and body characters of all the questions of one /predict/batch together.
    max_batch_chars: int = Field(default=500_000, ge=1_000)
    max_feedback_tags: int = Field(default=10, ge=1, le=100)
    # How often the service checks whether the champion alias moved (each replica, jittered +-50 %).
    reload_interval_seconds: float = Field(default=5.0, gt=0)
    # The API's request-log connections on PostgreSQL: at most pool + overflow per replica (docs/scaling.md: replicas
    # x this must fit max_connections, or go through PgBouncer).
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=10, ge=0, le=100)
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
    # Where spill files go (default: <home>/spill). Its own volume in a deployment, apart from the models and reports,
    # so that a spill filling its disk never stops a model from being saved.
    # Unset (the empty path): <home>/spill, filled in after validation.
    spill_dir: Path = Path()

    # Data lifecycle (`tagwatch prune`, run by the monitor's scheduler every prune_interval_seconds, or a CronJob).
    # Logged requests and their feedback are kept this many days: whole months are dropped on PostgreSQL (monthly
    # partitions), rows deleted in batches on SQLite.
    retention_days: int = Field(default=90, ge=1, le=36_500)
    # PostgreSQL: monthly partitions of the request log created ahead of time (this month and N more).
    partitions_ahead: int = Field(default=3, ge=1, le=24)
    # Drift reports (HTML) are kept this many days (the drift_runs rows stay; their report link then says so).
    report_retention_days: float = Field(default=14.0, gt=0)
    # Grafana as users open it (the reports index links its drift dashboard there); empty: no link.
    grafana_url: str = Field(default="http://localhost:3000", pattern=r"^(https?://\S+)?$")
    # Model versions kept besides the champion and the previous champion: the newest N (older ones and their
    # artifacts are deleted).
    keep_model_versions: int = Field(default=5, ge=1, le=1_000)
    prune_interval_seconds: float = Field(default=3_600.0, gt=0)
    # Share of spill_max_bytes at which the spill counts as nearly full (the TagwatchSpillNearlyFull alert).
    spill_warn_ratio: float = Field(default=0.8, gt=0, lt=1)

    # Monitor: schedule and window
    monitor_interval_seconds: float = Field(default=300.0, gt=0)
    monitor_host: str = "127.0.0.1"
    monitor_port: int = Field(default=9108, ge=0, le=65535)
    # The window: the newest `window_size` requests, within the last `window_seconds` when set.
    window_size: int = Field(default=1_000, ge=10)
    window_seconds: float | None = Field(default=None, gt=0)
    # Windows smaller than this are skipped (not measured).
    min_window: int = Field(default=200, ge=1)
    # Detection thresholds and minimum sizes (defaults measured: bench/drift.py); the detector's other constants are
    # in monitor.drift.types.Thresholds.
    drift_text_auc: float = Field(default=0.6, ge=0.5, lt=1.0)
    drift_f1_drop: float = Field(default=0.08, gt=0, le=1)
    drift_emerging_share: float = Field(default=0.05, gt=0, le=1)
    drift_importance_drop: float = Field(default=0.6, gt=0, le=2)
    drift_min_current: int = Field(default=300, ge=1)
    drift_min_feedback: int = Field(default=100, ge=1)
    # Policy
    drift_confirmations: int = Field(default=2, ge=1)
    retrain_cooldown_windows: int = Field(default=3, ge=0)
    retrain_cooldown_seconds: float = Field(default=0.0, ge=0)
    # After a drift-triggered promotion, retrain again every N windows, M times (each challenger must still win).
    retrain_followup_windows: int = Field(default=2, ge=1)
    retrain_max_followups: int = Field(default=3, ge=0)
    auto_retrain: bool = True
    # Who runs the retrain requests the monitor files: "embedded" (a job of `tagwatch monitor`'s own scheduler) or
    # "off" (a `tagwatch retrain-worker` process runs them). Either polls the pending ones every N seconds.
    retrain_runner: Literal["embedded", "off"] = "embedded"
    retrain_poll_seconds: float = Field(default=60.0, gt=0)
    # The retrain worker's /metrics (`tagwatch retrain-worker`; 0: none).
    retrain_worker_host: str = "127.0.0.1"
    retrain_worker_port: int = Field(default=9109, ge=0, le=65535)
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
    # The poisoning-proof part of the gate (retrain.promote): on the champion's trusted guard set the challenger may
    # lose at most this much micro-F1, and a frequent tag at most this much F1 (unset: that check is off) ...
    promotion_guard_tolerance: float | None = Field(default=0.1, ge=0, le=1)
    promotion_guard_max_tag_drop: float | None = Field(default=None, ge=0, le=1)
    # ... and feedback contradicting the champion's confident (>= this score) predictions on a stable tag at least
    # this often (and 0.3 more often than trusted labels do) holds the retrain (unset: never held).
    feedback_confident_score: float = Field(default=0.9, gt=0.5, lt=1)
    feedback_suspect_contradiction: float | None = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _parse_keys(cls, data: Any) -> Any:
        # Here, not in a field validator: the error then names the variable once (the CLI prefixes field errors).
        if isinstance(data, dict):
            for field, variable in API_KEY_VARIABLES.items():
                if field in data:
                    data = {**data, field: parse_api_keys(data[field], variable)}
        return data

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'tagwatch.db'}"
        if self.registry_url is None:
            self.registry_url = f"sqlite:///{self.home / 'registry.db'}"
        self.spill_dir = self.home / "spill" if self.spill_dir == Path() else self.spill_dir.expanduser()
        if self.environment == "production":
            self._refuse_placeholder_passwords()
            self._refuse_weak_keys()
        return self

    def _refuse_weak_keys(self) -> None:
        for field, variable in API_KEY_VARIABLES.items():
            keys: tuple[ApiKey, ...] = getattr(self, field)
            for key in keys:
                secret = key.secret.get_secret_value()
                if placeholder_reason(secret) is not None:
                    problem = "is a placeholder value"
                elif len(secret) < MIN_SECRET_CHARS:
                    problem = f"is shorter than {MIN_SECRET_CHARS} characters"
                else:
                    continue
                raise ValueError(
                    f"{variable}: the secret of key {key.name!r} {problem}: set a random one, e.g. "
                    "`openssl rand -base64 32` (TAGWATCH_ENVIRONMENT=production refuses weak API keys)"
                )

    def _refuse_placeholder_passwords(self) -> None:
        from sqlalchemy.engine import make_url

        urls = {"TAGWATCH_DATABASE_URL": self.database_url, "TAGWATCH_REGISTRY_URL": self.registry_url}
        for variable, url in urls.items():
            parsed = make_url(str(url))
            if parsed.drivername.startswith("sqlite"):
                continue
            reason = placeholder_reason(parsed.password if isinstance(parsed.password, str) else None)
            if reason is not None:
                # The compose stack builds the URLs from .env: name the variable users set for this user.
                raise ValueError(
                    f"the database password in {variable} {reason}: set {self._password_variable(parsed.username)} "
                    "in .env to a real secret (TAGWATCH_ENVIRONMENT=production refuses empty and placeholder passwords)"
                )
        for kind in ("api", "monitor", "grafana"):
            secret = getattr(self, f"{kind}_db_password")
            if secret is not None and (reason := placeholder_reason(secret.get_secret_value())) is not None:
                raise ValueError(
                    f"TAGWATCH_{kind.upper()}_DB_PASSWORD {reason}: set a real secret in .env "
                    "(TAGWATCH_ENVIRONMENT=production refuses empty and placeholder passwords)"
                )

    def _password_variable(self, username: str | None) -> str:
        """The .env variable holding the password of database user ``username`` in the compose stack."""
        for kind in ("api", "monitor", "grafana"):
            if username == f"{self.db_role_prefix}_{kind}":
                return f"TAGWATCH_{kind.upper()}_DB_PASSWORD"
        return "POSTGRES_PASSWORD"

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
    def reports_dir(self) -> Path:
        return self.home / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
