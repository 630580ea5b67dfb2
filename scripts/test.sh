#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite. Extra arguments go to pytest
# (and then only the SQLite run happens). Without arguments the suite then runs a
# second time against a throwaway PostgreSQL server (scripts/pg.sh): everything but
# the browser tests, the trainer's own tests and the SQLite crash tests, which do
# not depend on the database or only exist for SQLite. LOUPE_TEST_POSTGRES=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
if [ $# -gt 0 ] || [ "${LOUPE_TEST_POSTGRES:-1}" = 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q
echo "--- the same suite on PostgreSQL ---"
exec bash scripts/pg.sh .venv/bin/python -m pytest -q -m "not browser and not slow" \
  --ignore=tests/browser --ignore=tests/reliability \
  --ignore=tests/training/test_train.py --ignore=tests/training/test_evaluate.py \
  --ignore=tests/taxonomy/test_properties.py
