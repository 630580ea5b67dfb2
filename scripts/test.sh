#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite. Extra arguments go to pytest
# (and then only the SQLite run happens). Without arguments the suite then runs a
# second time against a throwaway PostgreSQL server (scripts/pg.sh), less the tests
# that add no database work of their own there (browser, trainer, single-worker
# training, schema fuzzing on its own SQLite file, deployment files) or that only
# exist for SQLite (crash tests). LOUPE_TEST_POSTGRES=0 skips the second run. ruff runs first:
# a lint error fails the command before any test.
# Both runs spread the tests over two processes (pytest-xdist): most tests wait on
# a server, a worker or a browser, so two cores nearly halve the time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/ruff check --quiet .  # lint and import order (pyproject.toml [tool.ruff]) before any test runs
if [ $# -gt 0 ] || [ "${LOUPE_TEST_POSTGRES:-1}" = 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q -n 2
echo "--- the same suite on PostgreSQL ---"
exec bash scripts/pg.sh .venv/bin/python -m pytest -q -n 2 -m "not browser and not slow" \
  --ignore=tests/browser --ignore=tests/reliability --ignore=tests/deploy \
  --ignore=tests/training/test_train.py --ignore=tests/training/test_evaluate.py \
  --ignore=tests/training/test_worker.py --ignore=tests/taxonomy/test_properties.py \
  --ignore=tests/taxonomy/test_set_properties.py \
  --ignore=tests/web/test_schema_fuzz.py --ignore=tests/snapshots/test_torchvision.py
