#!/usr/bin/env bash
# Set up, then lint (ruff), type-check (mypy) and run the test suite. Extra
# arguments go to pytest. Any failing step fails the script; so does pytest
# collecting no test at all (its exit status 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff check" >&2
.venv/bin/ruff check
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
.venv/bin/python -m pytest "$@"
