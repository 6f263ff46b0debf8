#!/usr/bin/env bash
# Sets up .venv (with test tools) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/install-browser.sh || echo "warning: no headless chromium; browser tests will be skipped" >&2
exec .venv/bin/python -m pytest "$@"
