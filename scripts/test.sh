#!/usr/bin/env bash
# Install (once) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
RECOMMENDER_EXTRAS=serve,dev,ray bash scripts/setup.sh  # the Ray tests run in CI too (ray is an extra)
# The widget is tested in a real browser: Debian's chromium (the test skips, saying why, if it cannot be had).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser test..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "could not install chromium; the browser test will be skipped" >&2
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
