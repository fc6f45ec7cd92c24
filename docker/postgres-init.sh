#!/usr/bin/env bash
# First start of the postgres container only (docker-entrypoint-initdb.d): two databases,
# one for Airflow's metadata and one for the warehouse, each with its own owner.
# Passwords come from the environment (.env), never from this file.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v warehouse_pw="$WAREHOUSE_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE reform LOGIN CREATEROLE PASSWORD :'warehouse_pw';
CREATE DATABASE reform OWNER reform ENCODING 'UTF8';
SQL
