#!/usr/bin/env bash
# Creates .venv with the pinned dependencies of requirements.lock and installs rmq-harness into it.
# Idempotent: a second run only re-checks. Usage: scripts/setup.sh [--test]  (--test adds test-only tools)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.lock
fi
