#!/usr/bin/env bash
# Make sure headless Chromium is installed, for the browser test of the HTML
# report (tests/test_browser_report.py). Installs the Debian packages
# `chromium` and `chromium-driver` with apt-get when Chromium is missing and
# we are root (or have password-less sudo). Exit status 0 when Chromium is
# available afterwards, 1 otherwise (with the reason on stderr).
set -euo pipefail

have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_chromium; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure_chromium: Chromium is missing and installing it needs root. Fix: run 'sudo apt-get install -y chromium chromium-driver'." >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: Chromium is missing and this system has no apt-get. Fix: install Chromium (or Chrome) and put it on PATH as 'chromium'." >&2
    exit 1
fi

echo "ensure_chromium: installing chromium and chromium-driver with apt-get (about a minute)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq chromium chromium-driver >&2

if have_chromium; then
    exit 0
fi
echo "ensure_chromium: apt-get finished but 'chromium' is still not on PATH." >&2
exit 1
