#!/usr/bin/env bash
# Set up (first run only) and start Loupe on http://127.0.0.1:8000. Extra arguments go to `loupe serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/loupe serve "$@"
