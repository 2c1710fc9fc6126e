-- Run once by the postgres image's entrypoint, on an empty data directory only (files in
-- /docker-entrypoint-initdb.d/), as POSTGRES_USER connected to POSTGRES_DB (tagwatch: the request log).
-- The MLflow model registry gets a database of its own: its tables (MLflow's migrations) stay apart from
-- tagwatch's Alembic-managed schema. `tagwatch init` creates the tables in both.
-- The processes' own roles (tagwatch_api, tagwatch_monitor, tagwatch_grafana) and their grants are not made here:
-- this file runs only once, so passwords set here could never be rotated. `tagwatch init` makes them on every run
-- (tagwatch/roles.py), after the migrations, with the passwords from .env.
CREATE DATABASE registry;
