#!/usr/bin/env bash
# The cost of one live event's fan-out, without issuing: holds SUBSCRIBERS streams of one
# campaign open, pauses and resumes it EVENTS times (each change of status is published at
# once to every stream), and prints the server's and the readers' CPU per event per
# subscriber. PERF=1 also records the server with perf (into $PERF_DATA).
#
#   loadtest/live-fanout.sh     # env: SUBSCRIBERS=10000 EVENTS=40 PERF= PERF_DATA=perf.data
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
EVENTS=${EVENTS:-40}
PERF_DATA=${PERF_DATA:-perf.data}

ulimit -n "$(ulimit -Hn)"
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp fanout
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
FIRSTCOME_DATA_DIR="$TMP/data" FIRSTCOME_LISTEN="127.0.0.1:$PORT" FIRSTCOME_LOG=warn \
    FIRSTCOME_MAX_CONNECTIONS=$((SUBSCRIBERS + 256)) \
    FIRSTCOME_MAX_LIVE_SUBSCRIBERS=$((SUBSCRIBERS + 1)) \
    "$BIN/firstcome" serve >>"$TMP/log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_port "$PORT"

"$BIN/live-subscribers" --base-url "$URL" --subscribers "$SUBSCRIBERS" --stock 1 \
    --hold-secs 3600 >"$TMP/hold" 2>&1 &
HOLDER=$!
PIDS+=("$HOLDER")
until grep -q -e holding -e Error "$TMP/hold"; do
    kill -0 "$HOLDER" 2>/dev/null || break
    sleep 0.5
done
grep -q holding "$TMP/hold" || { cat "$TMP/hold" >&2; exit 1; }
# "<campaign id>: <n> streams open, holding them ..."
ID=$(grep holding "$TMP/hold" | cut -d: -f1)
OPEN=$(grep holding "$TMP/hold" | sed -n 's/^[^:]*: \([0-9]*\) streams open.*/\1/p')
[ "$OPEN" = "$SUBSCRIBERS" ] || { echo "only $OPEN of $SUBSCRIBERS streams opened" >&2; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
server0=$(cpu_ticks "$SERVER"); readers0=$(cpu_ticks "$HOLDER")
if [ -n "${PERF:-}" ]; then
    perf record -F 2999 -g -p "$SERVER" -o "$PERF_DATA" 2>/dev/null &
    RECORDER=$!
    PIDS+=("$RECORDER")
    sleep 0.5
fi
for i in $(seq 1 "$EVENTS"); do
    paused=$([ $((i % 2)) -eq 1 ] && echo true || echo false)
    curl -sf -o /dev/null -X PATCH -H "authorization: Bearer $FIRSTCOME_ADMIN_KEY" \
        -H 'content-type: application/json' -d "{\"paused\": $paused}" "$URL/v1/campaigns/$ID"
    # Time for the fan-out to finish before the next event (it takes ~0.1 s for 10,000).
    sleep 0.5
done
if [ -n "${PERF:-}" ]; then kill -INT "$RECORDER"; wait "$RECORDER" || true; fi
server1=$(cpu_ticks "$SERVER"); readers1=$(cpu_ticks "$HOLDER")
# /proc counts CPU in ticks of 10 ms; 10,000 µs a tick.
awk -v s=$((server1 - server0)) -v r=$((readers1 - readers0)) -v n="$SUBSCRIBERS" -v e="$EVENTS" 'BEGIN {
    printf "%d events x %d subscribers: server %.1f us, readers %.1f us of CPU per event per subscriber\n",
        e, n, s * 10000 / (e * n), r * 10000 / (e * n) }'
