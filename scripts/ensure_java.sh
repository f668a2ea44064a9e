#!/usr/bin/env bash
# Make sure a Java runtime for Spark (the Spark engine, privagg[spark]) is installed:
# Debian's `openjdk-17-jre-headless`, installed when `java` is missing. Exit status 0
# when Java is available afterwards, 1 otherwise (with the reason on stderr).
set -euo pipefail
exec bash "$(dirname "$0")/ensure_debian_packages.sh" ensure_java \
    'command -v java || test -x "${JAVA_HOME:-/nonexistent}/bin/java"' \
    "install Java 17 (e.g. Temurin 17) and put it on PATH or set JAVA_HOME." \
    openjdk-17-jre-headless
