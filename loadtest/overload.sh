#!/usr/bin/env bash
# Overload on loopback: what firstcome does when far more clients come than it can serve.
#
#   loadtest/overload.sh      # env: CONNECTIONS=8000 SECS=20 MAX_CONNECTIONS=4096
#                             #      SERVER_BIN (another build of firstcome, for an A/B)
#
# 1. Peak: wrk -c64 for 10 s (every request issues to a new user): coupons/s.
# 2. Overload: wrk with CONNECTIONS (default 8,000, about twice max_connections) for SECS:
#    the connections over the cap wait in the listen queue for a place, those still
#    waiting after over_cap_wait_ms are answered 503 and closed, and wrk reconnects them
#    at once, so the server has a crowd at the door on top of a full house. Reports
#    the coupons/s issued meanwhile (against the peak), the 503s, wrk's socket errors,
#    and the server's RSS (sampled every 100 ms) before, at most during, and 10 s after.
# wrk (not the load generator: one process must hold thousands of sockets) is not
# installed by CI; `apt-get install wrk`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNECTIONS=${CONNECTIONS:-8000}
SECS=${SECS:-20}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-4096}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp overload
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
FIRSTCOME_DATA_DIR="$TMP/data" FIRSTCOME_LISTEN="127.0.0.1:$PORT" FIRSTCOME_LOG=warn \
    FIRSTCOME_MAX_CONNECTIONS="$MAX_CONNECTIONS" "${SERVER_BIN:-$BIN/firstcome}" serve >>"$TMP/log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_port "$PORT"
rss_mb() { awk '$1 == "VmRSS:" {print $2 / 1024}' "/proc/$SERVER/status"; }

CID=$(curl -sf -H "Authorization: Bearer $FIRSTCOME_ADMIN_KEY" -H 'Content-Type: application/json' \
    -d '{"name":"overload","total_stock":1000000000}' "$URL/v1/campaigns" |
    sed -n 's/.*"id":"\([0-9a-z]*\)".*/\1/p')

issued_per_sec() { # wrk output file, seconds
    awk -v s="$2" '/^status 201:/ {print $3 / s}' "$1"
}

echo "== peak: wrk -t2 -c64 -d10s" >&2
wrk -t2 -c64 -d10s -s loadtest/wrk/issue.lua "$URL" -- "$CID" "$FIRSTCOME_ISSUER_KEY" peak >"$TMP/peak.txt"
PEAK=$(issued_per_sec "$TMP/peak.txt" 10)
sleep 2
RSS_BEFORE=$(rss_mb)

echo "== overload: wrk -t2 -c$CONNECTIONS -d${SECS}s (max_connections $MAX_CONNECTIONS)" >&2
(while :; do rss_mb >>"$TMP/rss"; sleep 0.1; done) &
SAMPLER=$!
prlimit --nofile=$((CONNECTIONS + 1000)) -- wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" --timeout 10s \
    -s loadtest/wrk/issue.lua "$URL" -- "$CID" "$FIRSTCOME_ISSUER_KEY" overload >"$TMP/over.txt" 2>&1 || true
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
OVER=$(issued_per_sec "$TMP/over.txt" "$SECS")
REFUSED=$(awk '/^status 503:/ {print $3}' "$TMP/over.txt")
ERRORS=$(grep -E 'Socket errors' "$TMP/over.txt" || echo "Socket errors: none")
RSS_MAX=$(sort -n "$TMP/rss" | tail -n 1)
sleep 10
RSS_AFTER=$(rss_mb)
METRICS=$(curl -s "$URL/metrics")
REFUSED_CONNS=$(echo "$METRICS" | awk '/^firstcome_http_connections_refused_total/ {print $2}')
# The coupons the server holds by then: its RSS after includes them (loadtest/million.sh
# measures what a million of them take).
ISSUED_TOTAL=$(echo "$METRICS" | awk '/^firstcome_issue_total\{outcome="issued"\}/ {print $2}')

cat "$TMP/over.txt" >&2
echo
awk -v p="$PEAK" -v o="$OVER" 'BEGIN {printf "issued: %.0f coupons/s at peak (64 connections), %.0f under overload: %.2f of the peak\n", p, o, o / p}'
echo "503 answers under overload: ${REFUSED:-0} (connections refused at the cap: ${REFUSED_CONNS:-0}); wrk: $ERRORS"
echo "RSS: ${RSS_BEFORE} MB before, at most ${RSS_MAX} MB during, ${RSS_AFTER} MB 10 s after," \
    "holding ${ISSUED_TOTAL:-?} coupons by then"
