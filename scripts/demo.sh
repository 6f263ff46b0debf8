#!/usr/bin/env bash
# Sets up .venv and runs the main job: a short recorded run on the embedded cluster with report.html.
# Extra arguments go to `rmqh demo` (see `.venv/bin/rmqh demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/rmqh demo "$@"
