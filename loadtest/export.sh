#!/usr/bin/env bash
# The export of a big campaign, on loopback: how long a CSV of every coupon takes, what it
# costs in memory, and what it costs issuing while it runs.
#
#   loadtest/export.sh     # env: N=1000000 ISSUE_USERS=200000 CONNECTIONS=64 ROUNDS=2
#
# 1. Fills one campaign with N coupons through POST /issue-batch (1,000 users a request).
# 2. Times `GET /v1/campaigns/{id}/coupons` with `Accept: text/csv` (every coupon), checks
#    the row count, and samples the server's RSS every 20 ms while it streams.
# 3. Measures issuing (firstcome-loadtest, ISSUE_USERS new users on a new campaign,
#    closed loop) without an export and with CSV exports of the big campaign running
#    back to back the whole time, interleaved ROUNDS times (without, with, with,
#    without, ...), and prints the ratio.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-1000000}
ISSUE_USERS=${ISSUE_USERS:-200000}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp export
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
FIRSTCOME_DATA_DIR="$TMP/data" FIRSTCOME_LISTEN="127.0.0.1:$PORT" FIRSTCOME_LOG=warn \
    "$BIN/firstcome" serve >>"$TMP/log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_port "$PORT"
admin=(-H "Authorization: Bearer $FIRSTCOME_ADMIN_KEY" -H 'Content-Type: application/json')
rss_mb() { awk '$1 == "VmRSS:" {print $2 / 1024}' "/proc/$SERVER/status"; }

CID=$(curl -sf "${admin[@]}" -d "{\"name\":\"export\",\"total_stock\":$N}" "$URL/v1/campaigns" |
    sed -n 's/.*"id":"\([0-9a-z]*\)".*/\1/p')
echo "== filling campaign $CID with $N coupons (issue-batch, 1,000 users a request)" >&2
START=$(date +%s.%N)
for ((from = 0; from < N; from += 1000)); do
    to=$((from + 999 < N - 1 ? from + 999 : N - 1))
    users=$(seq -f '"e%.0f"' "$from" "$to" | paste -sd,)
    curl -sf -o /dev/null "${admin[@]}" -d "{\"user_ids\":[$users]}" "$URL/v1/campaigns/$CID/issue-batch"
done
END=$(date +%s.%N)
awk -v s="$START" -v e="$END" -v n="$N" 'BEGIN {printf "filled: %d coupons in %.1f s (%.0f coupons/s through issue-batch)\n", n, e - s, n / (e - s)}'

export_csv() {
    curl -sf -H "Authorization: Bearer $FIRSTCOME_ADMIN_KEY" -H 'Accept: text/csv' \
        "$URL/v1/campaigns/$CID/coupons" "$@"
}

echo "== exporting $N coupons as CSV" >&2
RSS_BEFORE=$(rss_mb)
(while :; do rss_mb >>"$TMP/rss"; sleep 0.02; done) &
SAMPLER=$!
TIMES=$(export_csv -o "$TMP/export.csv" -w '%{time_total} %{size_download}')
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
ROWS=$(($(wc -l <"$TMP/export.csv") - 1))
[ "$ROWS" -eq "$N" ] || { echo "the export has $ROWS rows, not $N" >&2; exit 1; }
RSS_MAX=$(sort -n "$TMP/rss" | tail -n 1)
read -r SECS BYTES <<<"$TIMES"
awk -v s="$SECS" -v b="$BYTES" -v n="$N" 'BEGIN {printf "export: %d rows, %.1f MB in %.2f s (%.0f rows/s)\n", n, b / 1e6, s, n / s}'
echo "RSS: ${RSS_BEFORE} MB before the export, at most ${RSS_MAX} MB while it streamed"

issue_rate() {
    "$BIN/firstcome-loadtest" --base-url "$URL" --scenario custom --stock "$ISSUE_USERS" \
        --users "$ISSUE_USERS" --repeats 1 --campaigns 1 --connections "$CONNECTIONS" \
        --no-verify --json "$TMP/issue.json" >"$TMP/issue.txt" 2>&1 ||
        { cat "$TMP/issue.txt" >&2; exit 1; }
    sed -n 's/^  "throughput_rps": \([0-9.]*\),*$/\1/p' "$TMP/issue.json"
}

with_export() {
    (while :; do export_csv -o /dev/null || true; done) &
    local loop=$!
    issue_rate
    kill "$loop"; wait "$loop" 2>/dev/null || true
}

echo "== issuing $ISSUE_USERS coupons without and with an export running, $ROUNDS rounds" >&2
without=() with=()
for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then
        without+=("$(issue_rate)"); with+=("$(with_export)")
    else
        with+=("$(with_export)"); without+=("$(issue_rate)")
    fi
    echo "round $((r + 1)): without ${without[-1]} req/s, with ${with[-1]} req/s" >&2
done
printf '%s\n' "${without[@]}" >"$TMP/without"
printf '%s\n' "${with[@]}" >"$TMP/with"
paste "$TMP/without" "$TMP/with" | awk '{a += $1; b += $2} END {printf "issuing: %.0f req/s without an export, %.0f req/s with one running: %.2f of it\n", a / NR, b / NR, b / a}'
