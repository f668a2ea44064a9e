#!/usr/bin/env bash
# Shared by the ensure_* scripts: install Debian packages with apt-get when a
# check command fails, as root (or with password-less sudo).
#   ensure_debian_packages.sh NAME 'CHECK COMMAND' 'FIX WITHOUT APT' PACKAGE...
# Exit status 0 when the check passes afterwards, 1 otherwise (reason on stderr).
set -euo pipefail

name=$1; check=$2; fix=$3; shift 3
packages=("$@")

if bash -c "$check" >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "$name: missing, and installing it needs root. Fix: run 'sudo apt-get install -y ${packages[*]}'." >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: missing, and this system has no apt-get. Fix: $fix" >&2
    exit 1
fi

echo "$name: installing ${packages[*]} with apt-get (about a minute)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq "${packages[@]}" >&2

if bash -c "$check" >/dev/null 2>&1; then
    exit 0
fi
echo "$name: apt-get finished but the check '$check' still fails." >&2
exit 1
