#!/usr/bin/env bash
# Set up Loupe in ./.venv. `setup.sh` installs the app and its training worker
# (torch, torchvision); `setup.sh test` also installs the test tools and,
# through apt when run as root, Debian's chromium (browser tests) and
# dataset-fashion-mnist (real images for tests), docker-compose (to check
# docker-compose.yml; no engine needed) and fonts (letters, a benchmark dataset).
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=${1:-}

pick_python() {
  for py in python3.11 python3.12 python3.13 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return
    fi
  done
  echo "Loupe needs Python 3.11 or newer" >&2; exit 1
}

if [ "$want_test" = "test" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
  command -v docker-compose >/dev/null || missing+=(docker-compose)  # parses docker-compose.yml in a test
  # fonts the letters benchmark dataset renders with (tests/letters.py), next to dejavu and liberation
  [ -d /usr/share/fonts/opentype/urw-base35 ] || missing+=(fonts-urw-base35)
  [ -d /usr/share/fonts/truetype/freefont ] || missing+=(fonts-freefont-ttf)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing ${missing[*]} with apt-get" >&2
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "please install these Debian packages first: ${missing[*]}" >&2; exit 1
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
# The worker trains with torch; pip takes torch 2.14.1 from this machine's disk when it is there.
extras="[worker]"
[ "$want_test" = "test" ] && extras="[test,worker]"
# Reinstall only when pyproject.toml changed since the last install.
stamp=".venv/.loupe-installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c "import app.main, torch, torchvision" && touch "$stamp"
  # The map's projection (PaCMAP) compiles with numba on its first call, about 30 CPU seconds, and caches
  # the result beside the package: pay it once here, not inside whichever test or job maps first.
  .venv/bin/python -c "import numpy as np; from app.embeddings.projection import project; \
project(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))" >/dev/null 2>&1 || true
fi
