#!/usr/bin/env bash
# The main job on the bundled sample: build the index (ECB+ news sample), then print "Also Read" lists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
rec=.venv/bin/recommender
$rec build data/ecbplus-sample.jsonl --index index
$rec info --index index
for id in ecb-1_10ecb ecb-12_2ecbplus; do
  echo
  $rec similar "$id" --index index -k 5
done
echo
echo '$ recommender query "Heavyweight champion defends his title with a knockout" -k 3'
$rec query "Heavyweight champion defends his title with a knockout" --index index -k 3
