#!/usr/bin/env bash
# The ceiling: firstcome's issue path as a fraction of a null handler on the same machine,
# in the same run. The null handler is `redis-lua-peer --trivial`: axum, the same JSON in,
# a body of the same shape out, no decision, nothing stored. Two cases:
#   issued  - every request from a new user, stock never runs out: each writes a coupon;
#   refused - stock 1: every request after the first is sold_out, nothing is written.
# Interleaved ROUNDS times (these machines are shared and noisy); prints each run, the
# medians, and the ratios to the null handler.
#
#   loadtest/ceiling.sh              # env: ROUNDS=3 USERS=40000 CONNECTIONS=32
#   OTHERS="before=/tmp/old/firstcome" loadtest/ceiling.sh   # also other builds, interleaved
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
USERS=${USERS:-40000}
CONNECTIONS=${CONNECTIONS:-32}

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp ceiling

port=$(free_port)
"$BIN/redis-lua-peer" --trivial --listen "127.0.0.1:$port" >"$TMP/null.log" 2>&1 &
PIDS+=($!)
wait_port "$port"
NULL="http://127.0.0.1:$port"

TARGETS=(firstcome)
declare -A BINS=([firstcome]="$BIN/firstcome")
for o in ${OTHERS:-}; do
    TARGETS+=("${o%%=*}")
    BINS[${o%%=*}]=${o#*=}
done
TARGETS+=(null)
CASES=(issued refused)

field() { # json-file key
    sed -n "s/^  \"$2\": \([0-9.e+-]*\),\{0,1\}$/\1/p" "$1"
}

declare -A TPUT
for round in $(seq 1 "$ROUNDS"); do
    for c in "${CASES[@]}"; do
        case $c in
            issued) stock=$((USERS * 2)) ;;
            refused) stock=1 ;;
        esac
        for t in "${TARGETS[@]}"; do
            case $t in
                null) args=(--base-url "$NULL" --no-verify) ;;
                *) args=(--spawn "${BINS[$t]}") ;;
            esac
            out="$TMP/$t-$c-$round.json"
            echo "== round $round: $c, $t" >&2
            if ! "$BIN/firstcome-loadtest" --scenario custom --stock "$stock" --users "$USERS" \
                --repeats 1 --campaigns 1 --connections "$CONNECTIONS" "${args[@]}" \
                --json "$out" >"$TMP/$t-$c-$round.txt" 2>&1; then
                cat "$TMP/$t-$c-$round.txt" >&2
                echo "run failed: $t $c round $round" >&2
                exit 1
            fi
            TPUT[$t-$c]+="$(field "$out" throughput_rps) "
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

echo
echo "$USERS requests per run, $CONNECTIONS connections (closed loop), $ROUNDS rounds interleaved"
printf '%-12s %-8s %-32s %10s %8s\n' target case "req/s (runs)" median "x null"
for c in "${CASES[@]}"; do
    null_median=$(echo "${TPUT[null-$c]}" | median)
    for t in "${TARGETS[@]}"; do
        m=$(echo "${TPUT[$t-$c]}" | median)
        runs=$(for x in ${TPUT[$t-$c]}; do printf '%.0f ' "$x"; done)
        awk -v t="$t" -v c="$c" -v r="$runs" -v m="$m" -v n="$null_median" \
            'BEGIN {printf "%-12s %-8s %-32s %10.0f %8.2f\n", t, c, r, m, m/n}'
    done
done
