#!/usr/bin/env bash
# The kill -9 soak, long: the integration test `soak` (api/tests/it/soak.rs) with many
# cycles on a release build. Each cycle starts the real binary on the same data dir and
# kills it with SIGKILL at a random moment: every third start during its start-up and
# recovery, the others 0.1 to 0.6 s into a mixed keyed load (issues, redeems,
# cancellations over two campaigns). At the end a clean start must serve every
# acknowledged coupon and change, replay every keyed answer byte for byte, and hold no
# oversold campaign and no user with two coupons of one campaign.
#
#   loadtest/soak.sh          # env: CYCLES=200
# Prints the report line: cycles, acknowledged, lost, oversold, duplicates, mismatches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
FIRSTCOME_SOAK_CYCLES=${CYCLES:-200} cargo test -q --release -p firstcome-api --test it \
    soak::kill_9_at_random_moments_loses_nothing_acknowledged -- --exact --nocapture \
    >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    cat "$out" # the server's stderr too: why a start failed
    exit "$status"
fi
grep -E '^soak:|test result' "$out"
