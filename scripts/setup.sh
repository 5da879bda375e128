#!/usr/bin/env bash
# Create .venv and install the project with pinned versions (constraints.txt pins torch to the CPU wheel).
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or constraints.txt changed.
# RECOMMENDER_EXTRAS picks the extras (default serve,dev: the demo); scripts/test.sh adds ray for the Ray tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras=${RECOMMENDER_EXTRAS:-serve,dev}
hash=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
stamp=".venv/.installed-$hash-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "installing into .venv (first run takes a few minutes)..." >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
  find .venv -maxdepth 1 -name '.installed-*' ! -name ".installed-$hash-*" -delete  # stale: the pins changed
  touch "$stamp"
fi
