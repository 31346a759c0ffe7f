#!/bin/sh
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are installed: the run store tests start a
# throwaway server from them (tests/support/postgres.py). Installs Debian's `postgresql` package
# when no /usr/lib/postgresql/*/bin/initdb exists; quiet and quick when it does.
set -eu

for initdb in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$initdb" ]; then
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: no /usr/lib/postgresql/*/bin/initdb and no apt-get: install PostgreSQL's server package" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-postgres: installing postgresql needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "ensure-postgres: installing Debian's postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || echo "ensure-postgres: apt-get update failed; trying the install anyway" >&2
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null

for initdb in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$initdb" ]; then
        exit 0
    fi
done
echo "ensure-postgres: postgresql was installed but no /usr/lib/postgresql/*/bin/initdb was found" >&2
exit 1
