#!/usr/bin/env bash
# Make sure headless Chromium is installed, for the browser test of the HTML
# report (tests/test_browser_report.py): Debian's `chromium` and
# `chromium-driver`, installed when missing. Exit status 0 when Chromium is
# available afterwards, 1 otherwise (with the reason on stderr).
set -euo pipefail
exec bash "$(dirname "$0")/ensure_debian_packages.sh" ensure_chromium \
    'command -v chromium || command -v chromium-browser' \
    "install Chromium (or Chrome) and put it on PATH as 'chromium'." \
    chromium chromium-driver
