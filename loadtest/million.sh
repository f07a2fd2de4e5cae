#!/usr/bin/env bash
# One campaign of a million coupons, on loopback: what it costs on disk and in memory,
# and how long a restart takes to answer again.
#
#   loadtest/million.sh        # env: N=1000000 CONNECTIONS=64 BIN=target/release/firstcome
#
# Issues N coupons to N distinct users with firstcome-loadtest (closed loop), then
# reports: the store's size on disk per coupon, the server's RSS while serving (VmRSS,
# and the peak VmHWM), then stops it (SIGTERM) and starts it again, timing from the exec
# to the first 200 of GET /v1/campaigns/{id} (recovery included), and the RSS after.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-1000000}
CONNECTIONS=${CONNECTIONS:-64}
cargo build --release -q -p firstcome-api -p firstcome-loadtest
BIN=${BIN:-target/release/firstcome}

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
export FIRSTCOME_ADMIN_KEY="million-admin-$RANDOM$RANDOM"
export FIRSTCOME_ISSUER_KEY="million-issuer-$RANDOM$RANDOM"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"

serve() {
    FIRSTCOME_DATA_DIR="$TMP/data" FIRSTCOME_LISTEN="127.0.0.1:$PORT" FIRSTCOME_LOG=warn \
        "$BIN" serve >>"$TMP/log" 2>&1 &
    PID=$!
}
rss() { awk -v k="$1:" '$1 == k {print $2 / 1024}' "/proc/$PID/status"; }

serve
wait_port "$PORT"
echo "== issuing $N coupons ($CONNECTIONS connections)" >&2
target/release/firstcome-loadtest --base-url "$URL" --scenario custom --stock "$N" \
    --users "$N" --repeats 1 --campaigns 1 --connections "$CONNECTIONS" \
    --json "$TMP/issue.json" >"$TMP/issue.txt" 2>&1 || { cat "$TMP/issue.txt" >&2; exit 1; }
CID=$(curl -s "$URL/v1/campaigns?limit=1" -H "Authorization: Bearer $FIRSTCOME_ISSUER_KEY" |
    sed -n 's/.*"id":"\([0-9a-z]*\)".*/\1/p' | head -n 1)
ISSUED=$(curl -s "$URL/v1/campaigns/$CID" -H "Authorization: Bearer $FIRSTCOME_ISSUER_KEY" |
    sed -n 's/.*"issued":\([0-9]*\).*/\1/p')
RSS_SERVING=$(rss VmRSS)
RSS_PEAK=$(rss VmHWM)
THROUGHPUT=$(sed -n 's/^  "throughput_rps": \([0-9.]*\),*$/\1/p' "$TMP/issue.json")
kill -TERM "$PID"; wait "$PID" || true; PID=
BYTES=$(du -sb "$TMP/data/store" | cut -f1)

START=$(date +%s.%N)
serve
until curl -sf -o /dev/null "$URL/v1/campaigns/$CID" -H "Authorization: Bearer $FIRSTCOME_ISSUER_KEY"; do
    sleep 0.01
done
END=$(date +%s.%N)
RSS_RESTARTED=$(rss VmRSS)

echo
echo "issued $ISSUED coupons at $THROUGHPUT req/s ($CONNECTIONS connections)"
awk -v b="$BYTES" -v n="$ISSUED" 'BEGIN {printf "store on disk: %.1f MB, %.0f bytes per coupon\n", b / 1e6, b / n}'
echo "RSS while serving: ${RSS_SERVING} MB (peak ${RSS_PEAK} MB); after the restart: ${RSS_RESTARTED} MB"
awk -v s="$START" -v e="$END" 'BEGIN {printf "restart: %.2f s from exec to the first answer\n", e - s}'
