"""Monthly partitions of the request log (PostgreSQL), the partition key in the keys, feedback keyed to its month.

PostgreSQL: ``prediction_requests`` becomes a table partitioned by RANGE of ``created_at``, one partition per month
(``prediction_requests_pYYYY_MM``) and a DEFAULT partition that catches a row of a month with no partition yet (it
is never refused; ``tagwatch_ensure_partitions`` moves such rows into their month's partition when it creates it).
``feedback`` gains ``request_created_at`` (its request's ``created_at``) and is partitioned by it the same way, so a
month of feedback leaves with its month of requests. Primary keys hold the partition key: (id, created_at) and
(id, request_created_at).

No foreign key from feedback to its request. One that references a partitioned table makes the drop of a month
check the referencing rows first: PostgreSQL DETACHes the partition (a plain DROP is refused while the key refers
to it) and scans it against feedback, under an ACCESS EXCLUSIVE lock on the whole ``prediction_requests``. Measured
here: 0.9 s for a month of 0.9 M rows (1.5 GB), all of it a stall of every insert; it grows with the month. Without
it, dropping a month is two catalog operations (milliseconds). The reference is kept by the writers instead: the
service stores feedback only for a request it finds stored (``tagwatch.db.requestlog.request_times``), and an insert
that does not give ``request_created_at`` looks it up (``tagwatch.db.schema``), refused when there is no request.

How an existing table is converted: a new partitioned table, the rows copied into it, the old table dropped (not
the old table attached as one partition after a CHECK constraint). Attaching would be quicker but would leave every
existing row in one partition spanning all past months, which retention could drop only once its newest row is
older than the cutoff, and which the window query could not prune; copying puts each row in its month at once.
Downtime: the migration holds ACCESS EXCLUSIVE locks on both tables while it copies (the service's writers spill to
disk meanwhile and replay afterwards; readers wait). It is bounded by the copy, once: 14 s for 1 M requests and
0.2 M feedback records on the 2-core machine of bench/results/requestlog-scale.md (so ~2.5 min for 10 M).

Two SECURITY DEFINER functions (owned by the migration's user, who owns the tables; ``search_path`` fixed; EXECUTE
revoked from PUBLIC and granted to the monitor role by ``tagwatch.roles``) do the partition DDL for roles that own
nothing: ``tagwatch_ensure_partitions(from_month, months)`` and ``tagwatch_drop_partitions_before(cutoff,
dry_run)``; ``tagwatch.db.partitions`` calls them.

SQLite: the same keys and column (batch mode), no partitions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Months created ahead by the migration itself (this month and 3 more); `tagwatch init` then ensures the
# configured TAGWATCH_PARTITIONS_AHEAD.
_AHEAD = 3

_REQUEST_COLUMNS = "id, created_at, title, body, body_format, predicted, model_version, latency_seconds"
_FEEDBACK_V4_COLUMNS = "id, request_id, tags, received_at, key_name"

# Creates the DEFAULT partitions if missing and the partitions of `months` months from the month of `from_month`,
# plus the month of every row found in a DEFAULT partition (moved into it). New tables are created apart and then
# ATTACHed: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent (inserts and reads go on), where CREATE TABLE ...
# PARTITION OF would take ACCESS EXCLUSIVE. The DEFAULT partition is locked first: ATTACH must check it anyway, and
# no row may land in it for a month between the move and the ATTACH.
_ENSURE = """
CREATE FUNCTION tagwatch_ensure_partitions(from_month timestamptz, months integer)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {search_path}, pg_temp SET "TimeZone" = 'UTC'
AS $fn$
DECLARE
    spec record;
    month timestamptz;
    part text;
    dflt text;
    months_sql text;
    missing boolean;
BEGIN
    IF months IS NULL OR months < 0 OR months > 120 THEN
        RAISE EXCEPTION 'months must be between 0 and 120, got %', months;
    END IF;
    FOR spec IN SELECT * FROM (VALUES ('prediction_requests', 'created_at'), ('feedback', 'request_created_at'))
            AS t(parent, key) LOOP
        dflt := spec.parent || '_default';
        EXECUTE format('LOCK TABLE %I IN SHARE UPDATE EXCLUSIVE MODE', spec.parent);
        IF to_regclass(quote_ident(dflt)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', dflt, spec.parent);
            RETURN NEXT dflt;
        END IF;
        -- The months wanted, and those of the rows the DEFAULT partition caught; only the missing ones matter.
        months_sql := format(
            'SELECT m FROM (SELECT generate_series(date_trunc(''month'', $1, ''UTC''), '
            '       date_trunc(''month'', $1, ''UTC'') + make_interval(months => $2 - 1), interval ''1 month'') '
            'UNION SELECT DISTINCT date_trunc(''month'', %I, ''UTC'') FROM %I) AS wanted(m) '
            'WHERE to_regclass(quote_ident(%L || ''_p'' || to_char(m, ''YYYY_MM''))) IS NULL ORDER BY 1',
            spec.key, dflt, spec.parent);
        EXECUTE 'SELECT EXISTS (' || months_sql || ')' INTO STRICT missing USING from_month, months;
        -- Nothing missing (the usual hourly run): no lock on the DEFAULT partition, which every query that cannot
        -- prune by time (a look-up by id) reads.
        CONTINUE WHEN NOT missing;
        EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', dflt);
        FOR month IN EXECUTE months_sql USING from_month, months LOOP
            part := spec.parent || '_p' || to_char(month, 'YYYY_MM');
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                           part, spec.parent);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', dflt, spec.key, spec.key, part)
                USING month, month + interval '1 month';
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           spec.parent, part, month, month + interval '1 month');
            RETURN NEXT part;
        END LOOP;
    END LOOP;
END
$fn$
"""

# The monthly partitions of both tables with their bounds (parsed from the partition bound; the DEFAULT partitions
# and any open bound left out), and the planner's estimate of their rows. Reads only the catalogs.
_LIST = """
CREATE FUNCTION tagwatch_request_partitions()
RETURNS TABLE (partition_name text, parent_name text, month_start timestamptz, month_end timestamptz,
               rows_estimate bigint)
LANGUAGE sql STABLE SET search_path = {search_path}, pg_temp SET "TimeZone" = 'UTC'
AS $fn$
    SELECT c.relname::text, p.relname::text, b[1]::timestamptz, b[2]::timestamptz, greatest(c.reltuples, 0)::bigint
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    '^FOR VALUES FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)$') AS b
    WHERE p.relname IN ('prediction_requests', 'feedback')
      AND p.relnamespace = {schema_literal}::regnamespace
      AND b IS NOT NULL
    ORDER BY 3, 2
$fn$
"""

# The monthly partitions of both tables whose upper bound is at or before `cutoff` (all their rows are older).
# dry_run: lists them all, drops nothing. Otherwise drops the OLDEST such month only (its feedback partition first,
# then its requests partition) and returns what it dropped; the caller calls again, each call its own transaction,
# so the ACCESS EXCLUSIVE lock a DROP takes on the parent lasts one month's catalog work. The DEFAULT partitions and
# a partition with an open bound are never dropped; a cutoff later than a day ago is refused (the monitor role may
# thin the log, not empty it).
_DROP = """
CREATE FUNCTION tagwatch_drop_partitions_before(cutoff timestamptz, dry_run boolean)
RETURNS TABLE (partition_name text, parent_name text, month_start timestamptz, rows_estimate bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {search_path}, pg_temp SET "TimeZone" = 'UTC'
AS $fn$
DECLARE
    oldest timestamptz;
    part record;
BEGIN
    IF cutoff IS NULL OR cutoff > now() - interval '1 day' THEN
        RAISE EXCEPTION 'refusing to drop request-log partitions newer than a day ago (cutoff %)', cutoff;
    END IF;
    IF dry_run THEN
        RETURN QUERY SELECT m.partition_name, m.parent_name, m.month_start, m.rows_estimate
            FROM tagwatch_request_partitions() m WHERE m.month_end <= cutoff
            ORDER BY m.month_start, m.parent_name = 'prediction_requests';
        RETURN;
    END IF;
    SELECT min(m.month_start) INTO oldest FROM tagwatch_request_partitions() m WHERE m.month_end <= cutoff;
    FOR part IN SELECT * FROM tagwatch_request_partitions() m WHERE m.month_start = oldest AND m.month_end <= cutoff
            ORDER BY m.parent_name = 'prediction_requests' LOOP
        EXECUTE format('DROP TABLE %I', part.partition_name);
        partition_name := part.partition_name;
        parent_name := part.parent_name;
        month_start := part.month_start;
        rows_estimate := part.rows_estimate;
        RETURN NEXT;
    END LOOP;
END
$fn$
"""

_FUNCTIONS = (
    "tagwatch_request_partitions()",
    "tagwatch_ensure_partitions(timestamptz, integer)",
    "tagwatch_drop_partitions_before(timestamptz, boolean)",
)


def _copy_grants(old: str, new: str) -> None:
    """The privileges granted on ``old`` (to the roles of tagwatch.roles, or anyone), granted on ``new`` too: the
    roles keep working between this migration and the next ``tagwatch init``, which re-applies its matrix anyway."""
    op.execute(
        f"""
        DO $$
        DECLARE g record;
        BEGIN
            FOR g IN SELECT grantee, privilege_type FROM information_schema.role_table_grants
                     WHERE table_schema = current_schema() AND table_name = '{old}' AND grantee <> current_user LOOP
                EXECUTE format('GRANT %s ON TABLE %I TO %I', g.privilege_type, '{new}', g.grantee);
            END LOOP;
        END
        $$
        """
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()


def _function_sql() -> list[str]:
    """The functions' CREATE statements for the schema the tables are in (fixed in their search_path: a SECURITY
    DEFINER function must not find objects of the caller's choosing first)."""
    schema = str(op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one())
    search_path = '"' + schema.replace('"', '""') + '"'
    names = {"search_path": search_path, "schema_literal": "'" + search_path.replace("'", "''") + "'"}
    return [sql.format(**names) for sql in (_LIST, _ENSURE, _DROP)]


def _upgrade_postgresql() -> None:
    op.execute("LOCK TABLE prediction_requests, feedback IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE feedback RENAME TO feedback_v4")
    op.execute("ALTER TABLE prediction_requests RENAME TO prediction_requests_v4")
    op.execute(
        """
        CREATE TABLE prediction_requests (
            id VARCHAR(64) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            body_format VARCHAR(16),
            predicted JSONB NOT NULL,
            model_version VARCHAR(64),
            latency_seconds FLOAT NOT NULL
        ) PARTITION BY RANGE (created_at)
        """
    )
    op.execute(
        """
        CREATE TABLE feedback (
            id VARCHAR(64) NOT NULL,
            request_id VARCHAR(64) NOT NULL,
            request_created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            tags JSONB NOT NULL,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            key_name VARCHAR(64)
        ) PARTITION BY RANGE (request_created_at)
        """
    )
    for sql in _function_sql():
        op.execute(sql)
    for function in _FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    # A partition for every month that holds rows, and for this month and the next ones; then the rows, each
    # routed to its month. Keys and indexes come after the copy: built once per partition, not row by row.
    op.execute(
        "SELECT tagwatch_ensure_partitions(m, 1) FROM "
        "(SELECT DISTINCT date_trunc('month', created_at, 'UTC') AS m FROM prediction_requests_v4) AS months"
    )
    op.execute(f"SELECT tagwatch_ensure_partitions(now(), {_AHEAD + 1})")
    op.execute(
        f"INSERT INTO prediction_requests ({_REQUEST_COLUMNS}) SELECT {_REQUEST_COLUMNS} FROM prediction_requests_v4"
    )
    # Every record has its request (the old foreign key held): the join loses none.
    op.execute(
        "INSERT INTO feedback (id, request_id, request_created_at, tags, received_at, key_name) "
        "SELECT f.id, f.request_id, r.created_at, f.tags, f.received_at, f.key_name "
        "FROM feedback_v4 f JOIN prediction_requests_v4 r ON r.id = f.request_id"
    )
    _copy_grants("prediction_requests_v4", "prediction_requests")
    _copy_grants("feedback_v4", "feedback")
    op.execute("DROP TABLE feedback_v4")
    op.execute("DROP TABLE prediction_requests_v4")
    op.create_primary_key("pk_prediction_requests", "prediction_requests", ["id", "created_at"])
    op.create_index("ix_prediction_requests_created_at", "prediction_requests", ["created_at"])
    op.create_primary_key("pk_feedback", "feedback", ["id", "request_created_at"])
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_index("ix_feedback_request_created_at", "feedback", ["request_created_at", "request_id"])
    op.execute("ANALYZE prediction_requests")
    op.execute("ANALYZE feedback")


def _downgrade_postgresql() -> None:
    op.execute("LOCK TABLE prediction_requests, feedback IN ACCESS EXCLUSIVE MODE")
    for function in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute("ALTER TABLE feedback RENAME TO feedback_v5")
    op.execute("ALTER TABLE prediction_requests RENAME TO prediction_requests_v5")
    op.execute("ALTER TABLE feedback_v5 RENAME CONSTRAINT pk_feedback TO pk_feedback_v5")
    op.execute(
        "ALTER TABLE prediction_requests_v5 RENAME CONSTRAINT pk_prediction_requests TO pk_prediction_requests_v5"
    )
    for index in ("ix_feedback_request_id", "ix_feedback_request_created_at", "ix_prediction_requests_created_at"):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_v5")
    op.execute(
        """
        CREATE TABLE prediction_requests (
            id VARCHAR(64) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            body_format VARCHAR(16),
            predicted JSONB NOT NULL,
            model_version VARCHAR(64),
            latency_seconds FLOAT NOT NULL,
            CONSTRAINT pk_prediction_requests PRIMARY KEY (id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE feedback (
            request_id VARCHAR(64) NOT NULL,
            tags JSONB NOT NULL,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            id VARCHAR(64) NOT NULL,
            key_name VARCHAR(64),
            CONSTRAINT pk_feedback PRIMARY KEY (id),
            CONSTRAINT fk_feedback_request_id_prediction_requests FOREIGN KEY (request_id)
                REFERENCES prediction_requests (id) ON DELETE CASCADE
        )
        """
    )
    # An id is unique again on its own: were one ever stored twice (two instants), the earliest stays.
    op.execute(
        f"INSERT INTO prediction_requests ({_REQUEST_COLUMNS}) SELECT DISTINCT ON (id) {_REQUEST_COLUMNS} "
        "FROM prediction_requests_v5 ORDER BY id, created_at"
    )
    # Feedback whose request is not stored has nowhere to point its foreign key: left out.
    op.execute(
        f"INSERT INTO feedback ({_FEEDBACK_V4_COLUMNS}) SELECT DISTINCT ON (f.id) "
        "f.id, f.request_id, f.tags, f.received_at, f.key_name FROM feedback_v5 f "
        "JOIN prediction_requests r ON r.id = f.request_id ORDER BY f.id, f.request_created_at"
    )
    _copy_grants("prediction_requests_v5", "prediction_requests")
    _copy_grants("feedback_v5", "feedback")
    op.execute("DROP TABLE feedback_v5")  # its partitions with it
    op.execute("DROP TABLE prediction_requests_v5")
    op.create_index("ix_prediction_requests_created_at", "prediction_requests", ["created_at"])
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])


def _upgrade_sqlite() -> None:
    # Feedback first: its foreign key to prediction_requests(id) would no longer name a key once that becomes
    # (id, created_at).
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("request_created_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE feedback SET request_created_at = "
        "(SELECT r.created_at FROM prediction_requests r WHERE r.id = feedback.request_id)"
    )
    op.execute("DELETE FROM feedback WHERE request_created_at IS NULL")  # none while the foreign key held
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("request_created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_constraint("fk_feedback_request_id_prediction_requests", type_="foreignkey")
        batch.drop_constraint("pk_feedback", type_="primary")
        batch.create_primary_key("pk_feedback", ["id", "request_created_at"])
        batch.create_index("ix_feedback_request_created_at", ["request_created_at", "request_id"])
    with op.batch_alter_table("prediction_requests") as batch:
        batch.drop_constraint("pk_prediction_requests", type_="primary")
        batch.create_primary_key("pk_prediction_requests", ["id", "created_at"])


def _downgrade_sqlite() -> None:
    op.execute(
        "DELETE FROM prediction_requests WHERE rowid NOT IN (SELECT min(rowid) FROM prediction_requests GROUP BY id)"
    )
    with op.batch_alter_table("prediction_requests") as batch:
        batch.drop_constraint("pk_prediction_requests", type_="primary")
        batch.create_primary_key("pk_prediction_requests", ["id"])
    op.execute("DELETE FROM feedback WHERE request_id NOT IN (SELECT id FROM prediction_requests)")
    op.execute("DELETE FROM feedback WHERE rowid NOT IN (SELECT min(rowid) FROM feedback GROUP BY id)")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_request_created_at")
        batch.drop_constraint("pk_feedback", type_="primary")
        batch.create_primary_key("pk_feedback", ["id"])
        batch.create_foreign_key(
            "fk_feedback_request_id_prediction_requests",
            "prediction_requests",
            ["request_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.drop_column("request_created_at")
