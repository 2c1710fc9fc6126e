"""Least-privilege PostgreSQL roles: each process of a deployment connects with the rights its job needs, no more.

``tagwatch init`` / ``tagwatch migrate`` run as the databases' owner (in the compose stack ``POSTGRES_USER``, a
superuser). After the Alembic migrations and the MLflow store creation they call ``ensure_roles``, which creates (or
updates) three roles, ``<prefix>_api``, ``<prefix>_monitor`` and ``<prefix>_grafana``:

- ``api`` (the service replicas): reads and appends to the request log (``prediction_requests``, ``feedback``;
  no UPDATE, no DELETE: feedback is append-only), reads ``alembic_version`` (a start-up with
  ``TAGWATCH_AUTO_MIGRATE=true`` then finds the schema at head and writes nothing), and only reads the registry (it
  loads the champion). Nothing on ``drift_runs`` or ``alias_moves``.
- ``monitor`` (drift runs, the retrain runner, promotion, rollback): reads the request log; writes ``drift_runs``
  (INSERT, then UPDATE when the run ends or its retrain moves on) and ``retrain_requests`` (INSERT when filed, UPDATE
  when claimed and finished), appends to ``alias_moves``; reads and writes every row of the registry (MLflow's
  tables: runs, model versions, aliases, tags).
  It may also EXECUTE the request log's partition functions (``tagwatch_ensure_partitions``,
  ``tagwatch_drop_partitions_before``, ``tagwatch_request_partitions``; migration 0005): SECURITY DEFINER functions
  that create the months ahead and drop whole months older than the retention, which is how ``tagwatch prune``
  keeps the log bounded without the monitor owning (or being able to alter) any table. The api role may not.
- ``grafana`` (the dashboards' data source): SELECT on ``drift_runs`` and ``alias_moves``, the tables its panels and
  annotations query; nothing else (not the request log's question texts), and it cannot connect to the registry.

Every role: LOGIN, NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS, member of no role, owner
of nothing (so no DDL: only an owner may ALTER or DROP), no CREATE on the schema, no temporary tables, CONNECT on the
databases it uses only. PUBLIC loses CONNECT and TEMPORARY on both databases and CREATE on their ``public`` schema.

The grants are re-applied on every run rather than left to ``ALTER DEFAULT PRIVILEGES``: each run first revokes
everything the roles hold on the schema's tables and sequences, then grants exactly the matrix below, in one
transaction per database. So a run converges (a grant added by hand, or left by an older tagwatch, is removed), a
table a later migration adds is granted in the same ``tagwatch init`` that creates it (the migrations only ever run
there), and nothing the owner creates by hand in these databases becomes readable by a role without a decision here.
MLflow's own schema upgrades (``mlflow db upgrade``, run by hand when MLflow changes) need a ``tagwatch migrate``
afterwards, for the same reason.

A role whose password is not given is neither created nor changed. Passwords are hashed on the client
(SCRAM-SHA-256, libpq's ``PQencryptPasswordConn``, as psql's ``\\password`` does): the server, its statement log
and ``pg_stat_activity`` only ever see the verifier. Running again with other passwords rotates them.

SQLite has no roles: the CLI says so and calls nothing here.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

log = logging.getLogger(__name__)

RoleKind = Literal["api", "monitor", "grafana"]
ROLE_KINDS: tuple[RoleKind, ...] = ("api", "monitor", "grafana")
DEFAULT_PREFIX = "tagwatch"
SCHEMA = "public"

# The request-log database: table -> role -> privileges. Every table of tagwatch's schema is named here (a test keeps
# it so): a table a later migration adds gets nothing until it is added, and a role not named gets nothing on it.
REQUEST_LOG_GRANTS: dict[str, dict[RoleKind, tuple[str, ...]]] = {
    "prediction_requests": {"api": ("SELECT", "INSERT"), "monitor": ("SELECT",)},
    "feedback": {"api": ("SELECT", "INSERT"), "monitor": ("SELECT",)},
    "drift_runs": {"monitor": ("SELECT", "INSERT", "UPDATE"), "grafana": ("SELECT",)},
    "alias_moves": {"monitor": ("SELECT", "INSERT"), "grafana": ("SELECT",)},
    # Filed by the monitor, claimed and finished by the retrain runner (which runs as the monitor role).
    "retrain_requests": {"monitor": ("SELECT", "INSERT", "UPDATE")},
    "alembic_version": {"api": ("SELECT",), "monitor": ("SELECT",)},
}
# The request-log database's functions (SECURITY DEFINER, migration 0005): signature -> roles that may EXECUTE.
# PUBLIC may not (PostgreSQL grants EXECUTE to PUBLIC by default: revoked by the migration and again on every run).
REQUEST_LOG_FUNCTIONS: dict[str, tuple[RoleKind, ...]] = {
    "tagwatch_request_partitions()": ("monitor",),
    "tagwatch_ensure_partitions(timestamptz, integer)": ("monitor",),
    "tagwatch_drop_partitions_before(timestamptz, boolean)": ("monitor",),
}
# The registry database (MLflow's tables): privileges on every table and sequence of the schema. Roles not named get
# no CONNECT on it.
REGISTRY_TABLE_GRANTS: dict[RoleKind, tuple[str, ...]] = {
    "api": ("SELECT",),
    "monitor": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}
REGISTRY_SEQUENCE_GRANTS: dict[RoleKind, tuple[str, ...]] = {
    "monitor": ("USAGE", "SELECT"),
}

_TABLE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
_SEQUENCE_PRIVILEGES = frozenset({"USAGE", "SELECT"})
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")
# Serializes concurrent runs on one server (two inits starting at once would race to CREATE ROLE).
_LOCK_KEY = zlib.crc32(b"tagwatch-ensure-roles")


class RolesError(RuntimeError):
    """The roles cannot be set up as asked (wrong URLs, an owner without the right to create roles, ...)."""


@dataclass(frozen=True, slots=True)
class RoleResult:
    """What ``ensure_roles`` did to one role."""

    kind: RoleKind
    role: str
    # created / updated (password set, attributes and grants re-applied) / skipped (no password given: untouched)
    action: Literal["created", "updated", "skipped"]
    # The databases it was granted something on (request log, registry), by name.
    databases: tuple[str, ...] = ()


def role_name(kind: RoleKind, prefix: str = DEFAULT_PREFIX) -> str:
    """The PostgreSQL role of ``kind`` under ``prefix``, e.g. ``tagwatch_api``."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"role prefix {prefix!r}: use 1-41 lowercase letters, digits and '_' (not first a digit)")
    if kind not in ROLE_KINDS:
        raise ValueError(f"unknown role kind {kind!r}: one of {', '.join(ROLE_KINDS)}")
    return f"{prefix}_{kind}"


def _secret(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value if value else None


def _conninfo(url: str) -> tuple[dict[str, Any], tuple[str | None, int | None, str]]:
    """psycopg connection arguments of a SQLAlchemy PostgreSQL URL, and (host, port, database) to compare URLs."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() not in ("postgresql", "postgres"):
        raise RolesError(f"{u.render_as_string(hide_password=True)} is not a PostgreSQL URL: roles exist only there")
    if not u.database:
        raise RolesError(f"{u.render_as_string(hide_password=True)} names no database")
    args: dict[str, Any] = {k: v for k, v in u.query.items() if isinstance(v, str)}
    args.update(dbname=u.database, connect_timeout=args.get("connect_timeout", 10), application_name="tagwatch-roles")
    for key, value in (("host", u.host), ("port", u.port), ("user", u.username), ("password", u.password)):
        if value is not None:
            args[key] = str(value)
    return args, (u.host, u.port, u.database)


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    import psycopg

    args, _ = _conninfo(url)
    with psycopg.connect(**args) as conn:  # one transaction, committed on a clean exit
        yield conn


def _q(*parts: Any) -> Any:
    from psycopg import sql

    return sql.SQL(" ").join(parts)


def _ident(name: str) -> Any:
    from psycopg import sql

    return sql.Identifier(name)


def _keywords(privileges: tuple[str, ...], allowed: frozenset[str]) -> Any:
    from psycopg import sql

    unknown = set(privileges) - allowed
    if unknown:  # the matrices are constants: this guards their edits, not user input
        raise ValueError(f"privileges {sorted(unknown)} are not among {sorted(allowed)}")
    return sql.SQL(", ").join(sql.SQL(p) for p in privileges)


def _check_owner(cur: Any) -> bool:
    """Whether the connected user is a superuser; raise unless it may create roles at all."""
    cur.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
    row = cur.fetchone()
    if row is None or not (row[0] or row[1]):
        cur.execute("SELECT current_user")
        raise RolesError(
            f"database user {cur.fetchone()[0]!r} may not create roles: run `tagwatch migrate` as the databases' "
            "owner with CREATEROLE (in the compose stack: POSTGRES_USER, a superuser)"
        )
    return bool(row[0])


def _ensure_role(cur: Any, conn: Any, role: str, password: str, *, superuser: bool) -> Literal["created", "updated"]:
    """Create ``role`` or bring an existing one back to the attributes below, with ``password``; no memberships."""
    from psycopg import sql

    cur.execute("SELECT current_user")
    if cur.fetchone()[0] == role:
        raise RolesError(f"role {role!r} is the user running the migration: choose another role prefix")
    # Hashed here: the statement carries the SCRAM verifier, never the password.
    verifier = conn.pgconn.encrypt_password(password.encode("utf-8"), role.encode("utf-8"), b"scram-sha-256")
    attributes = "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT"
    if superuser:  # only a superuser may name these three, even to turn them off
        attributes += " NOSUPERUSER NOREPLICATION NOBYPASSRLS"
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    action: Literal["created", "updated"] = "updated" if cur.fetchone() else "created"
    verb = "CREATE ROLE" if action == "created" else "ALTER ROLE"
    cur.execute(
        _q(
            sql.SQL(verb),
            _ident(role),
            sql.SQL("WITH"),
            sql.SQL(attributes),
            sql.SQL("PASSWORD"),
            sql.Literal(verifier.decode("ascii")),
        )
    )
    # Memberships would let it SET ROLE to more rights (NOINHERIT only stops it from using them implicitly).
    cur.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s)",
        (role,),
    )
    for (granted,) in cur.fetchall():
        cur.execute(_q(sql.SQL("REVOKE"), _ident(granted), sql.SQL("FROM"), _ident(role)))
    cur.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = %s",
        (role,),
    )
    if tuple(cur.fetchone()) != (False, False, False, False, False, False, True):
        raise RolesError(f"role {role!r} keeps an attribute only a superuser can remove (SUPERUSER, REPLICATION, ...)")
    return action


def _role_exists(cur: Any, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def _lock_down_database(cur: Any) -> str:
    """PUBLIC loses CONNECT and TEMPORARY on the connected database and CREATE on its schema; its name."""
    from psycopg import sql

    cur.execute("SELECT current_database()")
    database = str(cur.fetchone()[0])
    cur.execute(_q(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE"), _ident(database), sql.SQL("FROM PUBLIC")))
    cur.execute(_q(sql.SQL("REVOKE CREATE ON SCHEMA"), _ident(SCHEMA), sql.SQL("FROM PUBLIC")))
    return database


def _reset_role(cur: Any, database: str, role: str) -> None:
    """Take away everything ``role`` holds in the connected database (its rows of the grant matrix come next)."""
    from psycopg import sql

    schema = _ident(SCHEMA)
    cur.execute(_q(sql.SQL("REVOKE ALL ON DATABASE"), _ident(database), sql.SQL("FROM"), _ident(role)))
    cur.execute(_q(sql.SQL("REVOKE ALL ON SCHEMA"), schema, sql.SQL("FROM"), _ident(role)))
    cur.execute(_q(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA"), schema, sql.SQL("FROM"), _ident(role)))
    cur.execute(_q(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA"), schema, sql.SQL("FROM"), _ident(role)))
    cur.execute(_q(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA"), schema, sql.SQL("FROM"), _ident(role)))


def _allow_in(cur: Any, database: str, role: str) -> None:
    from psycopg import sql

    cur.execute(_q(sql.SQL("GRANT CONNECT ON DATABASE"), _ident(database), sql.SQL("TO"), _ident(role)))
    cur.execute(_q(sql.SQL("GRANT USAGE ON SCHEMA"), _ident(SCHEMA), sql.SQL("TO"), _ident(role)))


def _tables(cur: Any) -> set[str]:
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (SCHEMA,))
    return {str(name) for (name,) in cur.fetchall()}


def _owned_sequences(cur: Any, table: str) -> list[str]:
    """The sequences behind ``table``'s serial and identity columns."""
    cur.execute(
        "SELECT s.relname FROM pg_class s "
        "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i') "
        "JOIN pg_class t ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid "
        "WHERE s.relkind = 'S' AND t.relname = %s AND t.relnamespace = %s::regnamespace",
        (table, SCHEMA),
    )
    return [str(name) for (name,) in cur.fetchall()]


def _grant_request_log(cur: Any, roles: Mapping[RoleKind, str]) -> None:
    from psycopg import sql

    missing = sorted(set(REQUEST_LOG_GRANTS) - _tables(cur))
    if missing:
        raise RolesError(f"the request-log database has no {', '.join(missing)}: run the migrations first")
    for table, grants in REQUEST_LOG_GRANTS.items():
        target = sql.Identifier(SCHEMA, table)
        for kind, privileges in grants.items():
            if kind not in roles:
                continue
            role = _ident(roles[kind])
            cur.execute(
                _q(
                    sql.SQL("GRANT"),
                    _keywords(privileges, _TABLE_PRIVILEGES),
                    sql.SQL("ON TABLE"),
                    target,
                    sql.SQL("TO"),
                    role,
                )
            )
            if "INSERT" in privileges:  # nextval() of the table's id column
                for sequence in _owned_sequences(cur, table):
                    cur.execute(
                        _q(sql.SQL("GRANT USAGE ON SEQUENCE"), sql.Identifier(SCHEMA, sequence), sql.SQL("TO"), role)
                    )
    for signature, kinds in REQUEST_LOG_FUNCTIONS.items():
        cur.execute("SELECT to_regprocedure(%s)", (f"{SCHEMA}.{signature}",))
        if cur.fetchone()[0] is None:
            raise RolesError(f"the request-log database has no function {signature}: run the migrations first")
        # The signatures are constants of this module (names and SQL types), not input.
        function = sql.SQL(f"{SCHEMA}.{signature}")
        cur.execute(_q(sql.SQL("REVOKE ALL ON FUNCTION"), function, sql.SQL("FROM PUBLIC")))
        for kind in kinds:
            if kind in roles:
                cur.execute(_q(sql.SQL("GRANT EXECUTE ON FUNCTION"), function, sql.SQL("TO"), _ident(roles[kind])))


def _grant_registry(cur: Any, roles: Mapping[RoleKind, str]) -> None:
    from psycopg import sql

    schema = _ident(SCHEMA)
    for kind, role in roles.items():
        if kind in REGISTRY_TABLE_GRANTS:
            privileges = _keywords(REGISTRY_TABLE_GRANTS[kind], _TABLE_PRIVILEGES)
            cur.execute(
                _q(
                    sql.SQL("GRANT"),
                    privileges,
                    sql.SQL("ON ALL TABLES IN SCHEMA"),
                    schema,
                    sql.SQL("TO"),
                    _ident(role),
                )
            )
        if kind in REGISTRY_SEQUENCE_GRANTS:
            privileges = _keywords(REGISTRY_SEQUENCE_GRANTS[kind], _SEQUENCE_PRIVILEGES)
            cur.execute(
                _q(
                    sql.SQL("GRANT"),
                    privileges,
                    sql.SQL("ON ALL SEQUENCES IN SCHEMA"),
                    schema,
                    sql.SQL("TO"),
                    _ident(role),
                )
            )


def ensure_roles(
    owner_url: str,
    registry_owner_url: str | None,
    passwords: Mapping[str, str | SecretStr | None],
    *,
    prefix: str = DEFAULT_PREFIX,
) -> list[RoleResult]:
    """Create or update the roles whose password is given and grant them exactly the matrix of this module.

    ``owner_url`` / ``registry_owner_url``: SQLAlchemy URLs of the request-log and registry databases as their owner
    (``registry_owner_url`` None or SQLite: the registry part is left out). ``passwords``: role kind ("api",
    "monitor", "grafana") -> password; a missing, None or empty one leaves that role alone. Idempotent; new
    passwords rotate the old ones. Raises ``RolesError`` when the URLs or the owner's rights do not allow it.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    unknown = set(passwords) - set(ROLE_KINDS)
    if unknown:
        raise ValueError(f"unknown role kinds {sorted(unknown)}: one of {', '.join(ROLE_KINDS)}")
    names = {kind: role_name(kind, prefix) for kind in ROLE_KINDS}
    secrets = {kind: _secret(passwords.get(kind)) for kind in ROLE_KINDS}
    active: dict[RoleKind, str] = {kind: names[kind] for kind in ROLE_KINDS if secrets[kind] is not None}
    _, log_address = _conninfo(owner_url)
    registry = registry_owner_url
    if registry is not None and make_url(registry).get_backend_name() == "sqlite":
        registry = None
    if registry is not None and _conninfo(registry)[1] == log_address:
        raise RolesError(
            "the request log and the registry are the same database: give the registry a database of its own "
            "(both keep an alembic_version table, and the roles' rights differ between the two)"
        )
    if not active:
        return [RoleResult(kind, names[kind], "skipped") for kind in ROLE_KINDS]
    results: dict[RoleKind, RoleResult] = {}
    databases: dict[RoleKind, list[str]] = {kind: [] for kind in active}
    try:
        with _connect(owner_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            superuser = _check_owner(cur)
            for kind, role in active.items():
                action = _ensure_role(cur, conn, role, secrets[kind] or "", superuser=superuser)
                results[kind] = RoleResult(kind, role, action)
            database = _lock_down_database(cur)
            for kind, role in active.items():
                _reset_role(cur, database, role)
                _allow_in(cur, database, role)
                databases[kind].append(database)
            _grant_request_log(cur, active)

        if registry is not None:
            with _connect(registry) as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                superuser = _check_owner(cur)
                database = _lock_down_database(cur)
                for kind in ROLE_KINDS:
                    role = names[kind]
                    needs = kind in active and (kind in REGISTRY_TABLE_GRANTS or kind in REGISTRY_SEQUENCE_GRANTS)
                    if needs:
                        # Same server: the role exists and this only sets the same password again. Another server: made.
                        _ensure_role(cur, conn, role, secrets[kind] or "", superuser=superuser)
                    if kind in active and _role_exists(cur, role):
                        _reset_role(cur, database, role)
                    if needs:
                        _allow_in(cur, database, role)
                        databases[kind].append(database)
                _grant_registry(cur, {k: r for k, r in active.items() if k in REGISTRY_TABLE_GRANTS})
    except psycopg.Error as exc:
        # psycopg's messages carry the server's reason, never the statement (which holds only verifiers anyway).
        raise RolesError(f"PostgreSQL refused to set up the roles: {type(exc).__name__}: {exc}".strip()) from exc

    out = []
    for kind in ROLE_KINDS:
        if kind in results:
            out.append(RoleResult(kind, names[kind], results[kind].action, tuple(databases[kind])))
            log.info("database role %s %s (%s)", names[kind], results[kind].action, ", ".join(databases[kind]))
        else:
            out.append(RoleResult(kind, names[kind], "skipped"))
    return out
