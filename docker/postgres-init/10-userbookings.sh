#!/usr/bin/env bash
# Creates the demo source database `userbookings` beside the Airflow metadata database, and
# `synthetic_staging`, the stand-in test environment multi-table runs load synthetic sets into.
#
# The postgres image runs the files in /docker-entrypoint-initdb.d only when it initialises an
# empty data directory, so this runs once per `postgres-data` volume; `docker compose down -v`
# resets it. The tables come from Flyway (sql/migrations), not from here: this script only
# creates the login role that owns the database, so Flyway and the `userbookings_db` Airflow
# connection connect as that role rather than as the superuser.
set -euo pipefail

: "${USERBOOKINGS_USER:?USERBOOKINGS_USER must be set (see .env.sample)}"
: "${USERBOOKINGS_PASSWORD:?USERBOOKINGS_PASSWORD must be set (see .env.sample)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role_name="$USERBOOKINGS_USER" -v role_password="$USERBOOKINGS_PASSWORD" <<'SQL'
CREATE ROLE :"role_name" LOGIN PASSWORD :'role_password';
CREATE DATABASE userbookings OWNER :"role_name";
CREATE DATABASE synthetic_staging OWNER :"role_name";
SQL
