#!/usr/bin/env bash
# Make sure a PostgreSQL server is installed, for the service's PostgreSQL tests
# (tests/test_service_budget.py). Installs Debian's `postgresql` package with
# apt-get when initdb is missing and we are root (or have password-less sudo).
# Exit status 0 when initdb is available afterwards, 1 otherwise (reason on stderr).
# The tests start their own server in a temporary folder; nothing is configured here.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

if have_postgres; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure_postgres: PostgreSQL is missing and installing it needs root. Fix: run 'sudo apt-get install -y postgresql'." >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_postgres: PostgreSQL is missing and this system has no apt-get. Fix: install PostgreSQL so that initdb is on PATH." >&2
    exit 1
fi

echo "ensure_postgres: installing postgresql with apt-get (about a minute)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq postgresql >&2

if have_postgres; then
    exit 0
fi
echo "ensure_postgres: apt-get finished but initdb is still not found." >&2
exit 1
