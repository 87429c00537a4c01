#!/usr/bin/env bash
# Runs the whole test suite under CPython 3 and under PyPy3, installing what is missing first.
# This is the README's test command and exactly what CI (.ci/run) calls.
#   bash tests/run.sh            both interpreters
#   HFTFEED_TEST_PYTHONS=cpython bash tests/run.sh   only one (cpython | pypy)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
PYPY_VENV="${HFTFEED_PYPY_VENV:-$HOME/.cache/hftfeed/pypy-venv}"
want="${HFTFEED_TEST_PYTHONS:-cpython pypy}"

apt_install() {
  # apt-get update only once, and only when something is actually missing.
  if [ -z "${_apt_updated:-}" ]; then $SUDO apt-get update -qq; _apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v python3 >/dev/null 2>&1; then apt_install python3 python3-pip; fi
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
  python3 -m pip install -q pytest 2>/dev/null || python3 -m pip install -q --break-system-packages pytest \
    || apt_install python3-pytest
fi

if [[ " $want " == *" pypy "* ]]; then
  if ! command -v pypy3 >/dev/null 2>&1; then apt_install pypy3; fi
  if [ ! -x "$PYPY_VENV/bin/python" ] || ! "$PYPY_VENV/bin/python" -c 'import pytest' >/dev/null 2>&1; then
    if ! pypy3 -m venv --help >/dev/null 2>&1 || ! pypy3 -c 'import ensurepip' >/dev/null 2>&1; then
      apt_install pypy3-venv
    fi
    rm -rf "$PYPY_VENV"
    pypy3 -m venv "$PYPY_VENV"
    "$PYPY_VENV/bin/pip" install -q pytest
  fi
fi

# systemd-analyze checks systemd/hftfeed.service (tests/test_systemd_unit.py; skipped without it).
# Installed only when we are root: it never asks a developer for a password.
if ! command -v systemd-analyze >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt_install systemd || echo "note: could not install systemd; the unit-file check will be skipped"
fi
# Debian's prometheus scrapes a daemon in tests/test_metrics.py (skipped without it); root only.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt_install --no-install-recommends prometheus || echo "note: could not install prometheus; the scrape test will be skipped"
fi

# tshark checks etc/wireshark/hftfeed.lua (tests/test_dissector.py; skipped without it). Root only.
if ! command -v tshark >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt_install tshark || echo "note: could not install tshark; the dissector check will be skipped"
fi

status=0
soak_s="${HFTFEED_SOAK_S:-60}"   # 0 skips the soak; the documented long run is 3600
run() {  # run <label> <python> [pytest args]
  echo "=== tests under $1: $("$2" -c 'import sys, platform; print(platform.python_implementation(), sys.version.split()[0])')"
  "$2" -m pytest -q -p no:cacheprovider tests "${@:3}" || status=1
  if [ "$soak_s" != "0" ] && [ $# -le 2 ]; then
    echo "=== soak under $1: ${soak_s} s of random faults (tests/soak.py)"
    "$2" tests/soak.py --duration-s "$soak_s" || status=1
  fi
}
[[ " $want " == *" cpython "* ]] && run CPython python3 "$@"
[[ " $want " == *" pypy "* ]] && run PyPy "$PYPY_VENV/bin/python" "$@"
exit $status
