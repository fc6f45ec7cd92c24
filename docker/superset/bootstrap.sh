#!/usr/bin/env bash
# Superset's first start (and every start: each step is idempotent): metadata migrations, the admin
# user, roles, then the warehouse registered as bi_reader with every marts table as a dataset; then
# the web server.
set -euo pipefail
: "${SUPERSET_SECRET_KEY:?set SUPERSET_SECRET_KEY in .env}"
: "${SUPERSET_ADMIN_PASSWORD:?set SUPERSET_ADMIN_PASSWORD in .env}"
superset db upgrade
superset fab create-admin --username "${SUPERSET_ADMIN_USER}" --firstname Superset --lastname Admin \
    --email "${SUPERSET_ADMIN_EMAIL}" --password "${SUPERSET_ADMIN_PASSWORD}" || true  # exists after the first start
superset init
python /app/reform/register_marts.py
exec /app/docker/entrypoints/run-server.sh
