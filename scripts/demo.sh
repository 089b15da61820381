#!/usr/bin/env bash
# Set up, then stylize the shipped sample photo with Van Gogh's Starry Night.
# Extra arguments go to `nst demo` (e.g. --style all, --size 512).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nst demo -o nst-demo "$@"
echo "Result: nst-demo/"
echo "Run nst yourself: .venv/bin/nst --help (or: source .venv/bin/activate; nst --help)"
