#!/usr/bin/env bash
# Live subscribers through a sell-out, on loopback, against the release binary: what
# SUBSCRIBERS open event streams cost in memory, how late they hear of the sell-out, and
# what they cost issuing.
#
#   loadtest/live.sh     # env: SUBSCRIBERS=10000 STOCK=200000 CONNECTIONS=64 ROUNDS=2
#                        #      INTERVAL_MS (the server's live_interval_ms; its default)
#                        #      SERVER_BIN (another build of firstcome, for an A/B)
#
# Each round runs `live-subscribers` on a fresh campaign twice, without subscribers and
# with SUBSCRIBERS of them (interleaved: without, with, with, without, ...), on one server
# started with room for them (--max-connections). Prints each run's report, then the
# issuing ratio with/without, the memory per subscriber and the lag percentiles.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
STOCK=${STOCK:-200000}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}

# Streams, issuing connections and the server's own files, on both sides of loopback.
ulimit -n "$(ulimit -Hn)"
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp live
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
if [ -n "${INTERVAL_MS:-}" ]; then export FIRSTCOME_LIVE_INTERVAL_MS=$INTERVAL_MS; fi
FIRSTCOME_DATA_DIR="$TMP/data" FIRSTCOME_LISTEN="127.0.0.1:$PORT" FIRSTCOME_LOG=warn \
    FIRSTCOME_MAX_CONNECTIONS=$((SUBSCRIBERS + CONNECTIONS + 256)) \
    FIRSTCOME_MAX_LIVE_SUBSCRIBERS=$((SUBSCRIBERS + 1)) \
    "${SERVER_BIN:-$BIN/firstcome}" serve >>"$TMP/log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_port "$PORT"

field() { # json-file key
    sed -n "s/^ *\"$2\": \([0-9.e+-]*\),\{0,1\}$/\1/p" "$1" | head -1
}

run() { # subscribers round
    local out="$TMP/live-$1-$2.json"
    echo "== round $2: $1 subscribers" >&2
    "$BIN/live-subscribers" --base-url "$URL" --subscribers "$1" --stock "$STOCK" \
        --connections "$CONNECTIONS" --server-pid "$SERVER" --json "$out" >&2
    WITHOUT_WITH[$1]+="$(field "$out" issued_per_sec) "
}

declare -A WITHOUT_WITH
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        run 0 "$round"; run "$SUBSCRIBERS" "$round"
    else
        run "$SUBSCRIBERS" "$round"; run 0 "$round"
    fi
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
without=$(echo "${WITHOUT_WITH[0]}" | median)
with=$(echo "${WITHOUT_WITH[$SUBSCRIBERS]}" | median)
echo
echo "stock $STOCK, $CONNECTIONS issuing connections, $ROUNDS rounds interleaved, live_interval_ms ${INTERVAL_MS:-default}"
echo "issued/s without subscribers: ${WITHOUT_WITH[0]}(median $without)"
echo "issued/s with $SUBSCRIBERS:   ${WITHOUT_WITH[$SUBSCRIBERS]}(median $with)"
awk -v a="$with" -v b="$without" 'BEGIN {printf "ratio with/without: %.2f\n", a / b}'
for f in "$TMP"/live-"$SUBSCRIBERS"-*.json; do
    echo "$(basename "$f"): per subscriber $(field "$f" rss_per_subscriber_kb) KiB RSS," \
        "lag p50 $(field "$f" p50) ms, p90 $(field "$f" p90) ms, p99 $(field "$f" p99) ms," \
        "max $(field "$f" max) ms; $(field "$f" saw_sold_out) saw the sell-out;" \
        "fan-out CPU: server $(field "$f" fan_out_server_cpu_ms) ms," \
        "readers $(field "$f" fan_out_reader_cpu_ms) ms"
done
