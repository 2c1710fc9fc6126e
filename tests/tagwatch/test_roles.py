"""The least-privilege database roles (tagwatch/roles.py), proven by connecting AS each role to a real PostgreSQL.

Every test runs against fresh databases (a request log migrated to head, an MLflow registry holding a champion) and
roles under a prefix of its own (roles are global to the server the whole CI shares), dropped afterwards. What a
role must not do is asserted with the exact PostgreSQL error class (``InsufficientPrivilege``), so a grant that is
too wide fails a test instead of passing it for another reason.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ProgrammingError
from typer.testing import CliRunner

from bench.postgres import fresh_postgres_database
from tagwatch.data import Question
from tagwatch.db import Base, make_engine, upgrade_database
from tagwatch.db.partitions import is_partition
from tagwatch.model import TagModel
from tagwatch.registry import Registry
from tagwatch.roles import (
    REGISTRY_SEQUENCE_GRANTS,
    REGISTRY_TABLE_GRANTS,
    REQUEST_LOG_GRANTS,
    ROLE_KINDS,
    RolesError,
    ensure_roles,
    role_name,
)
from tagwatch.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards" / "json"
MODEL_NAME = "tagwatch"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
# Statements no role may run, in either database: DDL, temporary tables, taking another role's rights.
DDL = (
    "CREATE TABLE public.evil (x integer)",
    "CREATE TABLE evil (x integer)",
    "CREATE TEMPORARY TABLE evil (x integer)",
    "CREATE SCHEMA evil",
    "CREATE VIEW public.evil AS SELECT 1 AS x",
    "CREATE FUNCTION public.evil() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
)
# DDL on an existing table of each database (only its owner may).
REQUEST_LOG_DDL = (
    "DROP TABLE prediction_requests",
    "ALTER TABLE feedback ADD COLUMN evil integer",
    "CREATE INDEX evil ON drift_runs (status)",
    "ALTER TABLE alias_moves OWNER TO CURRENT_USER",
)
REGISTRY_DDL = (
    "DROP TABLE registered_model_aliases",
    "ALTER TABLE model_versions ADD COLUMN evil integer",
    "CREATE INDEX evil ON runs (status)",
    "TRUNCATE registered_model_aliases",
)


# --- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def session_prefix() -> str:
    """Role names of this test session: tw<random>_<n>_api, ... (a server may run several sessions at once)."""
    return f"tw{uuid.uuid4().hex[:10]}"


_counter = iter(range(1_000_000))


@dataclass
class Stack:
    """Two fresh databases as their owner, the roles' prefix and passwords, the champion version."""

    admin_url: str
    log_url: str
    registry_url: str
    artifacts: Path
    prefix: str
    passwords: dict[str, str] = field(default_factory=dict)
    champion: str | None = None

    def role(self, kind: str) -> str:
        return role_name(kind, self.prefix)  # type: ignore[arg-type]

    def url_as(self, kind: str, database: str) -> str:
        base = self.log_url if database == "log" else self.registry_url
        u = make_url(base).set(username=self.role(kind), password=self.passwords[kind])
        return u.render_as_string(hide_password=False)

    def ensure(self, passwords: dict[str, str] | None = None, **kwargs: Any) -> list[Any]:
        if passwords is not None:
            self.passwords = passwords
        return ensure_roles(self.log_url, self.registry_url, self.passwords, prefix=self.prefix, **kwargs)


def _conninfo(url: str) -> dict[str, Any]:
    u = make_url(url)
    args: dict[str, Any] = {"dbname": u.database, "host": u.host, "port": u.port, "user": u.username}
    if u.password is not None:
        args["password"] = u.password
    return {k: v for k, v in args.items() if v is not None}


@contextlib.contextmanager
def connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection in autocommit: a refused statement does not spoil the next one."""
    with psycopg.connect(**_conninfo(url), autocommit=True) as conn:
        yield conn


def _drop_roles(admin_url: str, prefix: str) -> None:
    with connect(admin_url) as conn:
        names = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,))]
        for name in names:
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


@contextlib.contextmanager
def _stack(admin_url: str, session_prefix: str, tmp: Path) -> Iterator[Stack]:
    """Migrated request log + MLflow registry store, nothing registered, no roles yet; all removed afterwards."""
    prefix = f"{session_prefix}_{next(_counter)}"
    with contextlib.ExitStack() as stack:
        # Last out: the roles hold grants in the databases until those are dropped.
        stack.callback(_drop_roles, admin_url, f"{prefix}_")
        log_url = stack.enter_context(fresh_postgres_database(admin_url, "tagwatch_roles_log"))
        registry_url = stack.enter_context(fresh_postgres_database(admin_url, "tagwatch_roles_registry"))
        upgrade_database(log_url)
        artifacts = tmp / "artifacts"
        Registry(registry_url, artifacts, MODEL_NAME).champion_version()  # MLflow creates its tables
        yield Stack(admin_url, log_url, registry_url, artifacts, prefix)


def _passwords() -> dict[str, str]:
    return {kind: secrets.token_urlsafe(18) for kind in ROLE_KINDS}


@pytest.fixture(scope="module")
def deployment(
    postgres_admin_url: str,
    session_prefix: str,
    small_model: TagModel,
    small_training_set: list[Question],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A deployment as `tagwatch init` leaves it: a champion registered by the owner, then the three roles."""
    with _stack(postgres_admin_url, session_prefix, tmp_path_factory.mktemp("roles")) as stack:
        owner = Registry(stack.registry_url, stack.artifacts, MODEL_NAME)
        version = owner.register(
            copy.copy(small_model),
            params=small_model.params,
            metrics={},
            data_window={"n_questions": len(small_training_set)},
            reference=small_training_set[:200],
        )
        owner.promote(version)
        stack.champion = version
        results = stack.ensure(_passwords())
        assert [(r.kind, r.action) for r in results] == [(k, "created") for k in ROLE_KINDS]
        yield stack


@pytest.fixture
def bare(postgres_admin_url: str, session_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    """Fresh databases without a model and without roles, for tests that create the roles themselves."""
    with _stack(postgres_admin_url, session_prefix, tmp_path) as stack:
        yield stack


# --- helpers -------------------------------------------------------------------------------------------------------
def denied(conn: psycopg.Connection[Any], statement: str, params: Any = None) -> None:
    """``statement`` is refused for lack of privilege (and for no other reason)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement, params)


def no_ddl(conn: psycopg.Connection[Any], stack: Stack, *statements: str) -> None:
    """No DDL, no temporary table, no taking the owner's rights, nor any of ``statements``."""
    for statement in (*DDL, *statements):
        denied(conn, statement)
    owner = make_url(stack.admin_url).username or "postgres"
    denied(conn, psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(owner)).as_string(conn))


def _chain(exc: BaseException) -> list[type[BaseException]]:
    out: list[type[BaseException]] = []
    current: BaseException | None = exc
    while current is not None and len(out) < 20:
        out.append(type(current))
        current = current.__cause__ or current.__context__
    return out


@contextlib.contextmanager
def statements_of(user: str) -> Iterator[list[str]]:
    """Every SQL statement SQLAlchemy engines (MLflow's, tagwatch's) send as database user ``user`` meanwhile."""
    seen: list[str] = []

    def capture(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.engine.url.username == user:
            seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", capture)


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier (pg_authid.rolpassword) is that of ``password`` (RFC 5802, 7677)."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    assert match, "not a SCRAM-SHA-256 verifier"
    iterations, salt, stored_key = int(match[1]), base64.b64decode(match[2]), match[3]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def _tables(url: str) -> list[str]:
    with connect(url) as conn:
        return sorted(r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def _sequences(url: str) -> list[str]:
    with connect(url) as conn:
        return sorted(r[0] for r in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))


def privileges(stack: Stack) -> dict[str, Any]:
    """What each role may do, as PostgreSQL answers it (PUBLIC's grants included), in both databases."""
    out: dict[str, Any] = {}
    for database, url in (("log", stack.log_url), ("registry", stack.registry_url)):
        tables, sequences = _tables(url), _sequences(url)
        with connect(url) as conn:
            name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            for kind in ROLE_KINDS:
                role = stack.role(kind)
                out[f"{database}/{kind}/database"] = {
                    p
                    for p in ("CONNECT", "CREATE", "TEMPORARY")
                    if conn.execute("SELECT has_database_privilege(%s, %s, %s)", (role, name, p)).fetchone()[0]  # type: ignore[index]
                }
                out[f"{database}/{kind}/schema"] = {
                    p
                    for p in ("USAGE", "CREATE")
                    if conn.execute("SELECT has_schema_privilege(%s, 'public', %s)", (role, p)).fetchone()[0]  # type: ignore[index]
                }
                for table in tables:
                    out[f"{database}/{kind}/table/{table}"] = {
                        p
                        for p in TABLE_PRIVILEGES
                        if conn.execute(
                            "SELECT has_table_privilege(%s, %s, %s)", (role, f"public.{table}", p)
                        ).fetchone()[0]  # type: ignore[index]
                    }
                for sequence in sequences:
                    out[f"{database}/{kind}/sequence/{sequence}"] = {
                        p
                        for p in ("USAGE", "SELECT", "UPDATE")
                        if conn.execute(
                            "SELECT has_sequence_privilege(%s, %s, %s)", (role, f"public.{sequence}", p)
                        ).fetchone()[0]  # type: ignore[index]
                    }
                if database == "log":
                    for function, allowed in conn.execute(
                        "SELECT p.proname, has_function_privilege(%s, p.oid, 'EXECUTE') FROM pg_proc p "
                        "WHERE p.pronamespace = 'public'::regnamespace",
                        (role,),
                    ):
                        out[f"log/{kind}/function/{function}"] = {"EXECUTE"} if allowed else set()
    return out


def expected_privileges(stack: Stack) -> dict[str, Any]:
    """The grant matrix as the tests read it (written out again here, on purpose, not derived from roles.py)."""
    log_tables = {
        "prediction_requests": {"api": {"SELECT", "INSERT"}, "monitor": {"SELECT"}},
        "feedback": {"api": {"SELECT", "INSERT"}, "monitor": {"SELECT"}},
        "drift_runs": {"monitor": {"SELECT", "INSERT", "UPDATE"}, "grafana": {"SELECT"}},
        "alias_moves": {"monitor": {"SELECT", "INSERT"}, "grafana": {"SELECT"}},
        "retrain_requests": {"monitor": {"SELECT", "INSERT", "UPDATE"}},
        "alembic_version": {"api": {"SELECT"}, "monitor": {"SELECT"}},
    }
    log_sequences = {
        "drift_runs_id_seq": {"monitor": {"USAGE"}},
        "alias_moves_id_seq": {"monitor": {"USAGE"}},
        "retrain_requests_id_seq": {"monitor": {"USAGE"}},
    }
    registry_tables = {"api": {"SELECT"}, "monitor": {"SELECT", "INSERT", "UPDATE", "DELETE"}}
    # The partition functions (SECURITY DEFINER): the monitor's retention runs them, nobody else (nor PUBLIC).
    log_functions = ("tagwatch_request_partitions", "tagwatch_ensure_partitions", "tagwatch_drop_partitions_before")
    out: dict[str, Any] = {}
    for kind in ROLE_KINDS:
        out[f"log/{kind}/database"] = {"CONNECT"}
        out[f"registry/{kind}/database"] = {"CONNECT"} if kind in registry_tables else set()
        for database in ("log", "registry"):
            out[f"{database}/{kind}/schema"] = {"USAGE"}  # PUBLIC keeps USAGE on public: it only shows names
        for table in _tables(stack.log_url):
            # A partition of the request log is reached through its parent's privileges only: none of its own.
            out[f"log/{kind}/table/{table}"] = set() if is_partition(table) else log_tables[table].get(kind, set())
        for function in log_functions:
            out[f"log/{kind}/function/{function}"] = {"EXECUTE"} if kind == "monitor" else set()
        for sequence in _sequences(stack.log_url):
            out[f"log/{kind}/sequence/{sequence}"] = log_sequences[sequence].get(kind, set())
        for table in _tables(stack.registry_url):
            out[f"registry/{kind}/table/{table}"] = registry_tables.get(kind, set())
        for sequence in _sequences(stack.registry_url):
            out[f"registry/{kind}/sequence/{sequence}"] = {"USAGE", "SELECT"} if kind == "monitor" else set()
    return out


def _verifier(stack: Stack, kind: str) -> str:
    with connect(stack.admin_url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (stack.role(kind),)).fetchone()
    assert row is not None
    assert row[0] is not None
    return str(row[0])


# The instant of the requests the roles' tests insert: a replayed row carries the same one.
_LOGGED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _insert_request(conn: psycopg.Connection[Any], request_id: str) -> None:
    conn.execute(
        "INSERT INTO prediction_requests (id, created_at, title, body, body_format, predicted, model_version, "
        "latency_seconds) VALUES (%s, %s, 'title', 'body', 'text', '[]'::jsonb, '1', 0.01) "
        "ON CONFLICT (id, created_at) DO NOTHING RETURNING id",
        (request_id, _LOGGED_AT),
    )


def _insert_feedback(conn: psycopg.Connection[Any], request_id: str) -> None:
    conn.execute(
        "INSERT INTO feedback (id, request_id, request_created_at, tags, received_at, key_name) "
        "VALUES (%s, %s, %s, '[\"python\"]'::jsonb, now(), 'replay') ON CONFLICT DO NOTHING",
        (uuid.uuid4().hex, request_id, _LOGGED_AT),
    )


def _writes(table: str) -> list[str]:
    """An INSERT, UPDATE, DELETE and TRUNCATE of ``table``: privileges are checked before any row is looked at."""
    return [
        f"INSERT INTO {table} DEFAULT VALUES",
        f"UPDATE {table} SET {_a_column(table)} = {_a_column(table)} WHERE false",
        f"DELETE FROM {table} WHERE false",
        f"TRUNCATE {table}",
    ]


_COLUMNS: dict[str, str] = {}


def _a_column(table: str) -> str:
    return _COLUMNS[table]


def _load_columns(url: str) -> None:
    with connect(url) as conn:
        for table, column in conn.execute(
            "SELECT table_name, min(column_name) FROM information_schema.columns WHERE table_schema = 'public' "
            "GROUP BY table_name"
        ):
            _COLUMNS[table] = f'"{column}"'


# --- the matrix itself ---------------------------------------------------------------------------------------------
def test_every_request_log_table_has_a_row_in_the_grant_matrix() -> None:
    # A table a later migration adds must be decided on here, or nobody but the owner can use it.
    assert set(REQUEST_LOG_GRANTS) == set(Base.metadata.tables) | {"alembic_version"}
    assert set(REGISTRY_TABLE_GRANTS) | set(REGISTRY_SEQUENCE_GRANTS) <= {"api", "monitor"}
    assert REGISTRY_TABLE_GRANTS["api"] == ("SELECT",)


def test_role_names_and_prefixes() -> None:
    assert [role_name(k) for k in ROLE_KINDS] == ["tagwatch_api", "tagwatch_monitor", "tagwatch_grafana"]
    assert role_name("api", "staging_2") == "staging_2_api"
    for bad in ("", "Tagwatch", "tag-watch", "1tagwatch", 'x"; DROP ROLE postgres; --', "a" * 42):
        with pytest.raises(ValueError, match="role prefix"):
            role_name("api", bad)


# --- PostgreSQL ----------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_roles_are_plain_logins_with_the_given_passwords(deployment: Stack) -> None:
    with connect(deployment.admin_url) as conn:
        for kind in ROLE_KINDS:
            role = deployment.role(kind)
            attributes = conn.execute(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = %s",
                (role,),
            ).fetchone()
            assert attributes == (True, False, False, False, False, False, False), role
            memberships = conn.execute(
                "SELECT count(*) FROM pg_auth_members WHERE member = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                (role,),
            ).fetchone()
            assert memberships == (0,), role
            # Stored as a SCRAM verifier of the given password: never the password itself.
            verifier = _verifier(deployment, kind)
            assert deployment.passwords[kind] not in verifier
            assert scram_matches(verifier, deployment.passwords[kind])
    for url in (deployment.log_url, deployment.registry_url):
        with connect(url) as conn:
            owned = conn.execute(
                "SELECT count(*) FROM pg_class "
                "WHERE relowner IN (SELECT oid FROM pg_roles WHERE starts_with(rolname, %s))",
                (f"{deployment.prefix}_",),
            ).fetchone()
            assert owned == (0,)
            grantable = conn.execute(
                "SELECT count(*) FROM information_schema.role_table_grants WHERE starts_with(grantee, %s) "
                "AND is_grantable = 'YES'",
                (f"{deployment.prefix}_",),
            ).fetchone()
            assert grantable == (0,)


@pytest.mark.postgres
def test_privileges_are_exactly_the_grant_matrix(deployment: Stack) -> None:
    assert "alias_moves" in _tables(deployment.log_url)
    assert "registered_model_aliases" in _tables(deployment.registry_url)
    actual, expected = privileges(deployment), expected_privileges(deployment)
    assert {k for k in actual if actual[k] != expected[k]} == set()
    assert actual == expected


@pytest.mark.postgres
def test_api_role_appends_to_the_request_log_and_does_nothing_else(deployment: Stack) -> None:
    _load_columns(deployment.log_url)
    request_id = uuid.uuid4().hex
    with connect(deployment.url_as("api", "log")) as conn:
        # What the service's request-log writer does: COPY predictions, INSERT ... ON CONFLICT DO NOTHING.
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY prediction_requests (id, created_at, title, body, body_format, "
                "predicted, model_version, latency_seconds) FROM STDIN"
            ) as copy_,
        ):
            copy_.write_row((uuid.uuid4().hex, datetime.now(UTC), "t", "b", None, "[]", "1", 0.01))
        _insert_request(conn, request_id)
        _insert_request(conn, request_id)  # a replayed row: skipped, not an error
        _insert_feedback(conn, request_id)
        _insert_feedback(conn, request_id)  # append-only: a second record
        count = conn.execute("SELECT count(*) FROM feedback WHERE request_id = %s", (request_id,)).fetchone()
        assert count == (2,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
        for table in ("prediction_requests", "feedback"):
            for statement in _writes(table)[1:]:
                denied(conn, statement)
        # An upsert needs UPDATE: feedback stays append-only.
        denied(
            conn,
            "INSERT INTO feedback (id, request_id, request_created_at, tags, received_at) "
            "VALUES (%s, %s, %s, '[]', now()) ON CONFLICT (id, request_created_at) DO UPDATE SET tags = excluded.tags",
            (uuid.uuid4().hex, request_id, _LOGGED_AT),
        )
        for table in ("drift_runs", "alias_moves"):
            denied(conn, f"SELECT * FROM {table}")
            for statement in _writes(table):
                denied(conn, statement)
        for statement in _writes("alembic_version"):
            denied(conn, statement)
        denied(conn, "SELECT nextval('drift_runs_id_seq')")
        no_ddl(conn, deployment, *REQUEST_LOG_DDL)


@pytest.mark.postgres
def test_api_role_loads_the_champion_read_only(deployment: Stack, small_model: TagModel) -> None:
    """The real MLflow client as the API role: the store opens, the champion loads, and nothing is written."""
    from mlflow.exceptions import MlflowException

    owner = Registry(deployment.registry_url, deployment.artifacts, MODEL_NAME)
    api = Registry(deployment.url_as("api", "registry"), deployment.artifacts, MODEL_NAME)
    with statements_of(deployment.role("api")) as sent:
        assert api.champion_version() == owner.champion_version() is not None
        model = api.load_champion()
        assert model is not None
        assert model.version == owner.champion_version()
        assert model.tags == small_model.tags
        info = api.version_info(model.version)
        assert info.params
        assert info.data_window["n_questions"] > 0
        assert [v.version for v in api.list_versions()] == [v.version for v in owner.list_versions()]
    # MLflow opened its tracking and registry stores as this role (schema check, default experiment) by reading only.
    assert sent
    verbs = {statement.split()[0].upper() for statement in sent}
    assert verbs <= {"SELECT"}, sorted(s for s in sent if not s.upper().startswith("SELECT"))

    # Writes through MLflow are refused by PostgreSQL.
    for attempt in (
        lambda: api.set_alias("challenger", model.version),
        lambda: api.delete_alias("champion"),
        lambda: api.register(
            copy.copy(small_model), params={}, metrics={}, data_window={"n_questions": 1}, reference=[]
        ),
    ):
        with pytest.raises(MlflowException) as caught:
            attempt()
        assert psycopg.errors.InsufficientPrivilege in _chain(caught.value)
    assert owner.champion_version() == api.champion_version()

    _load_columns(deployment.registry_url)
    with connect(deployment.url_as("api", "registry")) as conn:
        for table in _tables(deployment.registry_url):
            conn.execute(f"SELECT * FROM {table} LIMIT 1")
            for statement in _writes(table):
                denied(conn, statement)
        for sequence in _sequences(deployment.registry_url):
            denied(conn, f"SELECT nextval('{sequence}')")
        no_ddl(conn, deployment, *REGISTRY_DDL)


@pytest.mark.postgres
def test_the_service_runs_as_the_api_role(deployment: Stack, tmp_path: Path) -> None:
    """The real app with the API role's URLs: start-up (migrations at head: a no-op), predictions and feedback logged,
    the champion served from the registry."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    settings = Settings(
        home=tmp_path / "home",
        database_url=deployment.url_as("api", "log"),
        registry_url=deployment.url_as("api", "registry"),
        auto_migrate=True,
        log_flush_interval_seconds=0.05,
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready").json()
        assert ready["status"] == "ready"
        assert ready["database"] == "ok"
        answer = client.post("/predict", json={"title": "How to merge two pandas DataFrames on a column"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == deployment.champion
        request_id = answer.json()["request_id"]
        for _ in range(2):
            assert client.post("/feedback", json={"request_id": request_id, "tags": ["pandas"]}).status_code == 200
        engine = make_engine(deployment.log_url)
        try:
            deadline = time.monotonic() + 10
            while True:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text("SELECT count(*) FROM feedback WHERE request_id = :r"), {"r": request_id}
                    ).scalar_one()
                if rows == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert rows == 2
            with engine.connect() as conn:
                logged = conn.execute(
                    text("SELECT count(*) FROM prediction_requests WHERE id = :r"), {"r": request_id}
                ).scalar_one()
            assert logged == 1
        finally:
            engine.dispose()
    # Nothing was spilled: every write was allowed.
    spill = settings.spill_dir
    assert not spill.exists() or not any(p.stat().st_size for p in spill.iterdir() if p.is_file())


@pytest.mark.postgres
def test_monitor_role_keeps_the_request_log_partitions_and_the_api_role_cannot(deployment: Stack) -> None:
    """Retention as `tagwatch prune` runs it in compose and the chart: as the monitor role, through the migration's
    SECURITY DEFINER functions; the api role may neither call them nor drop a partition itself."""
    from tagwatch.db.partitions import ensure_partitions, prune_requests

    old = datetime(2023, 2, 14, tzinfo=UTC)  # a month no partition exists for: the DEFAULT partition takes it
    request_id = uuid.uuid4().hex
    with connect(deployment.log_url) as conn:
        conn.execute(
            "INSERT INTO prediction_requests (id, created_at, title, body, predicted, latency_seconds) "
            "VALUES (%s, %s, 't', 'b', '[]', 0.01)",
            (request_id, old),
        )
        conn.execute(
            "INSERT INTO feedback (id, request_id, request_created_at, tags, received_at) "
            "VALUES (%s, %s, %s, '[]', now())",
            (uuid.uuid4().hex, request_id, old),
        )
    monitor = make_engine(deployment.url_as("monitor", "log"))
    api = make_engine(deployment.url_as("api", "log"))
    try:
        created = ensure_partitions(monitor, now=datetime.now(UTC), ahead=4)
        assert {"prediction_requests_p2023_02", "feedback_p2023_02"} <= set(created)  # moved out of DEFAULT
        cutoff = datetime(2023, 6, 1, tzinfo=UTC)
        planned = prune_requests(monitor, older_than=cutoff, dry_run=True)
        assert planned.partitions_dropped == ("feedback_p2023_02", "prediction_requests_p2023_02")
        with pytest.raises(ProgrammingError) as refused:
            prune_requests(api, older_than=cutoff)
        assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
        with pytest.raises(ProgrammingError) as refused:
            ensure_partitions(api, now=datetime.now(UTC), ahead=12)
        assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
        with connect(deployment.url_as("api", "log")) as conn:
            denied(conn, "DROP TABLE prediction_requests_p2023_02")
            denied(conn, "ALTER TABLE prediction_requests DETACH PARTITION prediction_requests_p2023_02")
            denied(conn, "SELECT count(*) FROM prediction_requests_p2023_02")  # only through the parent
        with connect(deployment.url_as("monitor", "log")) as conn:
            denied(conn, "DROP TABLE feedback_p2023_02")
        done = prune_requests(monitor, older_than=cutoff)
        assert done.partitions_dropped == planned.partitions_dropped
        with connect(deployment.log_url) as conn:
            assert conn.execute("SELECT count(*) FROM prediction_requests WHERE id = %s", (request_id,)).fetchone() == (
                0,
            )
            assert conn.execute("SELECT count(*) FROM feedback WHERE request_id = %s", (request_id,)).fetchone() == (0,)
    finally:
        monitor.dispose()
        api.dispose()


@pytest.mark.postgres
def test_prune_runs_whole_as_the_monitor_role(
    deployment: Stack, small_model: TagModel, small_training_set: list[Question], tmp_path: Path
) -> None:
    """`tagwatch prune` as compose's monitor and the chart's CronJob run it: every part with the monitor role's URLs
    (partitions and retention through the functions, report links cleared in drift_runs, model versions deleted
    from the registry), none failing for want of a privilege."""
    from commands.prune import run_prune

    owner = Registry(deployment.registry_url, deployment.artifacts, MODEL_NAME)
    for _ in range(2):  # versions no alias names, beyond the newest one kept
        owner.register(
            copy.copy(small_model),
            params=small_model.params,
            metrics={},
            data_window={"n_questions": 10},
            reference=small_training_set[:50],
        )
    settings = Settings(
        home=deployment.artifacts.parent,
        database_url=deployment.url_as("monitor", "log"),
        registry_url=deployment.url_as("monitor", "registry"),
        model_name=MODEL_NAME,
        keep_model_versions=1,
        auto_migrate=False,
        spill_dir=tmp_path / "spill",
    )
    engine = make_engine(settings.db_url)
    try:
        registry = Registry.from_settings(settings)
        result = run_prune(settings, engine=engine, registry=registry)
        assert result.errors == {}, result.errors
        assert result.skipped == {}, result.skipped
        assert result.model_versions is not None
        assert result.model_versions.deleted
        left = owner.list_versions()
        newest = max(int(v.version) for v in left)
        # What is left: the aliased versions and the newest one; the champion untouched.
        assert all(v.aliases or int(v.version) == newest for v in left)
        assert owner.champion_version() == deployment.champion
        again = run_prune(settings, engine=engine, registry=registry)  # idempotent: nothing more to delete
        assert again.errors == {}
        assert again.model_versions is not None
        assert again.model_versions.deleted == ()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_monitor_role_writes_drift_runs_alias_moves_and_the_registry(
    deployment: Stack, small_model: TagModel, small_training_set: list[Question]
) -> None:
    from sqlalchemy.orm import Session

    from tagwatch.db import AliasMove, DriftRun

    _load_columns(deployment.log_url)
    # As the monitor job does: a row 'running' first, updated when the run ends; an alias move appended.
    engine = make_engine(deployment.url_as("monitor", "log"))
    try:
        with Session(engine) as session:
            run = DriftRun(started_at=datetime.now(UTC), status="running", confirmed={}, reasons=[])
            session.add(run)
            session.commit()
            run.status, run.finished_at = "ok", datetime.now(UTC)
            run.retrain = {"result": "promoted"}
            session.commit()
            move = AliasMove(
                moved_at=datetime.now(UTC),
                model_name=MODEL_NAME,
                alias="champion",
                from_version="1",
                to_version="2",
                trigger="test",
                actor="monitor",
            )
            session.add(move)
            session.commit()
            assert session.get(DriftRun, run.id) is not None
    finally:
        engine.dispose()
    with connect(deployment.url_as("monitor", "log")) as conn:
        for table in ("prediction_requests", "feedback", "alembic_version"):
            conn.execute(f"SELECT * FROM {table} LIMIT 1")
            for statement in _writes(table):
                denied(conn, statement)
        denied(conn, "DELETE FROM drift_runs WHERE false")
        denied(conn, "TRUNCATE drift_runs")
        denied(conn, "UPDATE alias_moves SET actor = actor WHERE false")
        denied(conn, "DELETE FROM alias_moves WHERE false")
        no_ddl(conn, deployment, *REQUEST_LOG_DDL)

    # The registry: a new version, promoted, then rolled back, as retrain and rollback do.
    owner = Registry(deployment.registry_url, deployment.artifacts, MODEL_NAME)
    monitor = Registry(deployment.url_as("monitor", "registry"), deployment.artifacts, MODEL_NAME)
    before = owner.champion_version()
    assert before is not None
    version = monitor.register(
        copy.copy(small_model),
        params=small_model.params,
        metrics={},
        data_window={"n_questions": 10},
        reference=small_training_set[:50],
    )
    monitor.set_alias("challenger", version)
    monitor.promote(version)
    assert owner.champion_version() == version
    monitor.promote(before)
    monitor.delete_alias("challenger")
    assert owner.champion_version() == before
    assert owner.get_alias("challenger") is None
    with connect(deployment.url_as("monitor", "registry")) as conn:
        no_ddl(conn, deployment, *REGISTRY_DDL)


def grafana_sql(sql: str) -> str:
    """A dashboard's SQL with Grafana's macros replaced by what they stand for over all of time."""
    macros = [
        (r"\$__timeFilter\([^)]*\)", "TRUE"),
        (r"\$__unixEpochFilter\([^)]*\)", "TRUE"),
        (r"\$__timeFrom\(\)", "'-infinity'::timestamptz"),
        (r"\$__timeTo\(\)", "'infinity'::timestamptz"),
        (r"\$__timeGroupAlias\(([^,)]+)[^)]*\)", r"\1 AS time"),
        (r"\$__timeGroup\(([^,)]+)[^)]*\)", r"\1"),
        (r"\$__timeEpoch\(([^)]+)\)", r"extract(epoch FROM \1) AS time"),
        (r"\$__time\(([^)]+)\)", r"\1 AS time"),
    ]
    for pattern, replacement in macros:
        sql = re.sub(pattern, replacement, sql)
    assert "$__" not in sql, f"a Grafana macro this test does not know: {sql}"
    return sql


def dashboard_sql() -> list[tuple[str, str]]:
    """(file, SQL) of every rawSql in dashboards/json: panels and annotations."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "rawSql" and isinstance(value, str):
                    found.append((where, value))
                else:
                    walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")), path.name)
    return found


def test_grafana_macros_are_replaced() -> None:
    assert grafana_sql("SELECT 1 FROM t WHERE $__timeFilter(t.at) AND x") == "SELECT 1 FROM t WHERE TRUE AND x"
    assert grafana_sql("SELECT $__timeGroupAlias(at, '5m'), 1") == "SELECT at AS time, 1"
    with pytest.raises(AssertionError, match="macro"):
        grafana_sql("SELECT $__unknown(x)")


@pytest.mark.postgres
def test_grafana_role_runs_every_dashboard_query_and_writes_nothing(deployment: Stack) -> None:
    queries = dashboard_sql()
    assert len(queries) >= 2
    tables = {t for _, sql in queries for t in re.findall(r"\bFROM\s+([a-z_]+)", sql) if t in REQUEST_LOG_GRANTS}
    assert tables <= {"drift_runs", "alias_moves"}, "a panel reads a table the grafana role cannot read"
    with connect(deployment.log_url) as owner:  # some rows, so the JSON expressions run on data
        owner.execute(
            "INSERT INTO drift_runs (started_at, status, n_current, n_labelled, data_detected, concept_detected, "
            "feature_detected, confirmed, retrain_triggered, reasons, retrain) VALUES (now(), 'ok', 10, 5, true, "
            "false, false, '{\"data\": true}', true, '[\"data drift\"]', "
            '\'{"result": "promoted", "comparison": {"reasons": ["better"], "n_holdout": 5}}\')'
        )
        owner.execute(
            "INSERT INTO alias_moves (moved_at, model_name, alias, from_version, to_version, trigger, actor) "
            "VALUES (now(), 'tagwatch', 'champion', '1', '2', 'drift: data', 'monitor')"
        )
    _load_columns(deployment.log_url)
    with connect(deployment.url_as("grafana", "log")) as conn:
        for where, sql in queries:
            try:
                conn.execute(grafana_sql(sql)).fetchall()
            except psycopg.Error as exc:
                pytest.fail(f"{where}: {type(exc).__name__}: {exc}\n{sql}")
        for table in ("prediction_requests", "feedback", "alembic_version"):
            denied(conn, f"SELECT * FROM {table}")
        for table in ("drift_runs", "alias_moves"):
            for statement in _writes(table):
                denied(conn, statement)
        denied(conn, "SELECT nextval('drift_runs_id_seq')")
        no_ddl(conn, deployment, *REQUEST_LOG_DDL)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(**_conninfo(deployment.url_as("grafana", "registry"))).close()


@pytest.mark.postgres
def test_running_again_rotates_the_passwords_and_converges(bare: Stack) -> None:
    first = _passwords()
    assert [r.action for r in bare.ensure(first)] == ["created"] * 3
    granted = privileges(bare)
    assert granted == expected_privileges(bare)
    verifiers = {kind: _verifier(bare, kind) for kind in ROLE_KINDS}

    # Rights added by hand (or left by an older version) are taken back by the next run.
    with connect(bare.log_url) as owner:
        owner.execute(f'GRANT UPDATE, DELETE ON feedback TO "{bare.role("api")}"')
        owner.execute(f'GRANT SELECT ON prediction_requests TO "{bare.role("grafana")}"')
        owner.execute(f'GRANT CREATE ON SCHEMA public TO "{bare.role("monitor")}"')
        owner.execute(f'GRANT TEMPORARY ON DATABASE {owner.info.dbname} TO "{bare.role("api")}"')
        owner.execute(f'GRANT "{bare.role("monitor")}" TO "{bare.role("grafana")}"')
        owner.execute(f'ALTER ROLE "{bare.role("api")}" CREATEDB INHERIT')
    with connect(bare.registry_url) as owner:
        owner.execute(f'GRANT INSERT ON ALL TABLES IN SCHEMA public TO "{bare.role("api")}"')
        owner.execute(f'GRANT CONNECT ON DATABASE {owner.info.dbname} TO "{bare.role("grafana")}"')
    assert privileges(bare) != granted

    second = _passwords()
    results = bare.ensure(second)
    assert [(r.action, r.databases[0]) for r in results] == [("updated", make_url(bare.log_url).database)] * 3
    assert [len(r.databases) for r in results] == [2, 2, 1]
    assert privileges(bare) == granted
    for kind in ROLE_KINDS:
        verifier = _verifier(bare, kind)
        assert verifier != verifiers[kind]
        assert scram_matches(verifier, second[kind])
        assert not scram_matches(verifier, first[kind])
    with connect(bare.admin_url) as conn:
        api = conn.execute(
            "SELECT rolcreatedb, rolinherit FROM pg_roles WHERE rolname = %s", (bare.role("api"),)
        ).fetchone()
        assert api == (False, False)
        members = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (bare.role("grafana"),),
        ).fetchone()
        assert members == (0,)

    # Idempotent: the same passwords again change nothing but the salt.
    bare.ensure(second)
    assert privileges(bare) == granted
    assert all(scram_matches(_verifier(bare, kind), second[kind]) for kind in ROLE_KINDS)


@pytest.mark.postgres
def test_a_role_without_a_password_is_neither_created_nor_touched(bare: Stack) -> None:
    assert [r.action for r in bare.ensure({})] == ["skipped"] * 3
    results = bare.ensure({"grafana": "g-" + secrets.token_urlsafe(12), "api": SecretStr(""), "monitor": None})
    assert [(r.kind, r.action) for r in results] == [("api", "skipped"), ("monitor", "skipped"), ("grafana", "created")]
    with connect(bare.admin_url) as conn:
        roles = {
            r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (bare.prefix,))
        }
    assert roles == {bare.role("grafana")}
    with connect(bare.url_as("grafana", "log")) as conn:
        conn.execute("SELECT count(*) FROM drift_runs")


@pytest.mark.postgres
def test_refusals(bare: Stack) -> None:
    with pytest.raises(RolesError, match="same database"):
        ensure_roles(bare.log_url, bare.log_url, _passwords(), prefix=bare.prefix)
    with pytest.raises(RolesError, match="not a PostgreSQL URL"):
        ensure_roles("sqlite:///x.db", None, _passwords(), prefix=bare.prefix)
    with pytest.raises(ValueError, match="unknown role kinds"):
        ensure_roles(bare.log_url, bare.registry_url, {"admin": "x"}, prefix=bare.prefix)
    # A user who may create roles but does not own the databases: refused by PostgreSQL, and nothing is left behind.
    outsider = f"{bare.prefix}_outsider"
    with connect(bare.admin_url) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD 'outsider-pw-1'").format(
                psycopg.sql.Identifier(outsider)
            )
        )
    outsider_url = make_url(bare.log_url).set(username=outsider, password="outsider-pw-1")
    with pytest.raises(RolesError, match="PostgreSQL refused to set up the roles: InsufficientPrivilege"):
        ensure_roles(outsider_url.render_as_string(hide_password=False), None, _passwords(), prefix=bare.prefix)
    with connect(bare.admin_url) as conn:
        made = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) AND rolname <> %s", (bare.prefix, outsider)
        ).fetchall()
    assert made == []
    # Only an owner with CREATEROLE (or a superuser) may run it: not one of the roles themselves.
    bare.ensure(_passwords())
    with pytest.raises(RolesError, match="may not create roles"):
        ensure_roles(bare.url_as("monitor", "log"), None, {"api": "x-" + secrets.token_urlsafe(12)}, prefix=bare.prefix)
    # A registry on SQLite: the request-log part only.
    results = ensure_roles(bare.log_url, "sqlite:///registry.db", bare.passwords, prefix=bare.prefix)
    assert [r.action for r in results] == ["updated"] * 3
    assert all(len(r.databases) == 1 for r in results)


@pytest.mark.postgres
def test_tagwatch_migrate_creates_the_roles_as_the_owner(bare: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from commands.cli import app

    passwords = _passwords()
    env = {
        "TAGWATCH_HOME": str(bare.artifacts.parent / "home"),
        "TAGWATCH_DATABASE_URL": bare.log_url,
        "TAGWATCH_REGISTRY_URL": bare.registry_url,
        "TAGWATCH_DB_ROLE_PREFIX": bare.prefix,
        "TAGWATCH_API_DB_PASSWORD": passwords["api"],
        "TAGWATCH_MONITOR_DB_PASSWORD": passwords["monitor"],
        "TAGWATCH_GRAFANA_DB_PASSWORD": passwords["grafana"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["migrate"])
        monkeypatch.delenv("TAGWATCH_GRAFANA_DB_PASSWORD")
        get_settings.cache_clear()
        second = CliRunner().invoke(app, ["migrate"])
    finally:
        get_settings.cache_clear()
    log_db, registry_db = make_url(bare.log_url).database, make_url(bare.registry_url).database
    assert first.exit_code == 0, first.output
    assert f"database role {bare.role('api')} created: {log_db}, {registry_db}" in first.output
    assert f"database role {bare.role('grafana')} created: {log_db}\n" in first.output
    assert second.exit_code == 0, second.output
    assert f"database role {bare.role('monitor')} updated: {log_db}, {registry_db}" in second.output
    assert f"database role {bare.role('grafana')}: skipped (TAGWATCH_GRAFANA_DB_PASSWORD is not set)" in second.output
    for password in passwords.values():
        assert password not in first.output + second.output
    bare.passwords = passwords
    assert privileges(bare) == expected_privileges(bare)


def test_tagwatch_migrate_on_sqlite_creates_no_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from commands.cli import app

    monkeypatch.setenv("TAGWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TAGWATCH_API_DB_PASSWORD", "a-real-password-1")
    for name in ("TAGWATCH_DATABASE_URL", "TAGWATCH_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "database roles: none (SQLite has no roles" in result.output


# --- settings ------------------------------------------------------------------------------------------------------
def test_role_passwords_are_secret_and_production_refuses_placeholders() -> None:
    settings = Settings(api_db_password="Zr4-qW8_tp-api", grafana_db_password="change-me-grafana-db-password")
    assert "Zr4-qW8_tp-api" not in repr(settings)
    assert settings.api_db_password is not None
    assert settings.api_db_password.get_secret_value() == "Zr4-qW8_tp-api"
    assert settings.monitor_db_password is None
    real = "postgresql+psycopg://tagwatch:Zr4-qW8_tp@postgres:5432/tagwatch"
    production = {"environment": "production", "database_url": real, "registry_url": real}
    assert Settings(**production, api_db_password="Zr4-qW8_tp-api").api_db_password is not None
    for kind in ROLE_KINDS:
        for value in ("change-me-x", "password", ""):
            with pytest.raises(ValidationError, match=f"TAGWATCH_{kind.upper()}_DB_PASSWORD"):
                Settings(**production, **{f"{kind}_db_password": value})
    # A role's URL with a placeholder password names that role's variable, the owner's names POSTGRES_PASSWORD.
    for user, variable in (
        ("tagwatch_api", "TAGWATCH_API_DB_PASSWORD"),
        ("tagwatch_monitor", "TAGWATCH_MONITOR_DB_PASSWORD"),
        ("tagwatch", "POSTGRES_PASSWORD"),
    ):
        url = f"postgresql+psycopg://{user}:change-me-x@postgres:5432/tagwatch"
        with pytest.raises(ValidationError, match=f"set {variable} in .env"):
            Settings(environment="production", database_url=url, registry_url=real)
    with pytest.raises(ValidationError):
        Settings(db_role_prefix="Bad-Prefix")
