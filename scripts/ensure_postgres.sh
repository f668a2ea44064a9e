#!/usr/bin/env bash
# Make sure a PostgreSQL server is installed, for the service's PostgreSQL tests
# (tests/test_service_budget.py): Debian's `postgresql`, installed when initdb
# is missing. The tests start their own server in a temporary folder; nothing
# is configured here. Exit status 0 when initdb is available afterwards, 1 otherwise.
set -euo pipefail
exec bash "$(dirname "$0")/ensure_debian_packages.sh" ensure_postgres \
    'command -v initdb || ls /usr/lib/postgresql/*/bin/initdb' \
    "install PostgreSQL so that initdb is on PATH." \
    postgresql
