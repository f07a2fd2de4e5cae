#!/usr/bin/env bash
# Compare firstcome with the Redis+Lua peer (redis-server with AOF `appendfsync always`,
# and with `appendfsync everysec`) and a trivial axum baseline, on loopback, on the same
# fcfs-like scenario, interleaved ROUNDS times. Prints throughput and p99 per run, the
# medians, and the ratios firstcome / peer.
#
#   loadtest/compare.sh            # env: ROUNDS=3 STOCK=20000 USERS=60000 CONNECTIONS=64
#
# Needs redis-server on PATH. Everything runs on 127.0.0.1 in a temp dir.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
STOCK=${STOCK:-20000}
USERS=${USERS:-60000}
CONNECTIONS=${CONNECTIONS:-64}

command -v redis-server >/dev/null || { echo "redis-server is not on PATH" >&2; exit 1; }

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
release_build_and_tmp compare

start_redis() { # name fsync -> sets REDIS_PORT
    local dir="$TMP/redis-$1" port
    port=$(free_port)
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
        --appendonly yes --appendfsync "$2" --logfile "$dir/log" &
    PIDS+=($!)
    wait_port "$port"
    REDIS_PORT=$port
}

start_peer() { # redis port (empty: trivial) -> sets PEER_URL
    # Not called in $(...): a subshell's PIDS+= would be lost, and the peer left running.
    local port
    port=$(free_port)
    if [ -n "$1" ]; then
        "$BIN/redis-lua-peer" --listen "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$1/" \
            >"$TMP/peer-$port.log" 2>&1 &
    else
        "$BIN/redis-lua-peer" --trivial --listen "127.0.0.1:$port" >"$TMP/peer-$port.log" 2>&1 &
    fi
    PIDS+=($!)
    wait_port "$port"
    PEER_URL="http://127.0.0.1:$port"
}

start_redis always always; REDIS_ALWAYS=$REDIS_PORT
start_redis everysec everysec; REDIS_EVERYSEC=$REDIS_PORT
start_peer "$REDIS_ALWAYS"; PEER_ALWAYS=$PEER_URL
start_peer "$REDIS_EVERYSEC"; PEER_EVERYSEC=$PEER_URL
start_peer ""; TRIVIAL=$PEER_URL

SCEN=(--scenario custom --stock "$STOCK" --users "$USERS" --repeats 1 --campaigns 1
      --connections "$CONNECTIONS")

field() { # json-file key
    sed -n "s/^  \"$2\": \([0-9.e+-]*\),\{0,1\}$/\1/p" "$1"
}
p99() {
    sed -n '/"latency_ms"/,/}/s/^ *"p99": \([0-9.e+-]*\),\{0,1\}$/\1/p' "$1"
}

TARGETS=(firstcome peer-always peer-everysec trivial)
declare -A TPUT P99
for round in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        out="$TMP/$t-$round.json"
        case $t in
            firstcome) args=(--spawn "$BIN/firstcome") ;;
            peer-always) args=(--base-url "$PEER_ALWAYS") ;;
            peer-everysec) args=(--base-url "$PEER_EVERYSEC") ;;
            trivial) args=(--base-url "$TRIVIAL" --no-verify) ;;
        esac
        echo "== round $round: $t" >&2
        if ! "$BIN/firstcome-loadtest" "${SCEN[@]}" "${args[@]}" --json "$out" >"$TMP/$t-$round.txt" 2>&1; then
            cat "$TMP/$t-$round.txt" >&2
            echo "run failed: $t round $round" >&2
            exit 1
        fi
        TPUT[$t]+="$(field "$out" throughput_rps) "
        P99[$t]+="$(p99 "$out") "
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

echo
echo "scenario: custom stock $STOCK, $USERS users, 1 request each, $CONNECTIONS connections (closed loop), $ROUNDS rounds interleaved"
printf '%-15s %-30s %12s %-24s %10s\n' target "throughput req/s (runs)" median "p99 ms (runs)" median
declare -A MT MP
for t in "${TARGETS[@]}"; do
    MT[$t]=$(echo "${TPUT[$t]}" | median)
    MP[$t]=$(echo "${P99[$t]}" | median)
    runs_t=$(for x in ${TPUT[$t]}; do printf '%.0f ' "$x"; done)
    runs_p=$(for x in ${P99[$t]}; do printf '%.2f ' "$x"; done)
    printf '%-15s %-30s %12.0f %-24s %10.2f\n' "$t" "$runs_t" "${MT[$t]}" "$runs_p" "${MP[$t]}"
done
echo
for t in peer-always peer-everysec trivial; do
    awk -v a="${MT[firstcome]}" -v b="${MT[$t]}" -v c="${MP[firstcome]}" -v d="${MP[$t]}" -v t="$t" \
        'BEGIN {printf "firstcome / %-14s throughput x%.2f   p99 x%.2f\n", t, a/b, c/d}'
done
echo "(the trivial baseline decides nothing and stores nothing; its verification is skipped)"
echo
# A server answers no faster than the trivial handler, which does only the HTTP and JSON
# work every server here does, on the same cores as the load generator. So trivial / peer
# is the most that any ratio firstcome / peer can reach in this run.
for t in peer-always peer-everysec; do
    awk -v a="${MT[trivial]}" -v b="${MT[$t]}" -v t="$t" \
        'BEGIN {printf "ceiling: trivial / %-14s x%.2f  (the most firstcome / %s can reach here)\n", t, a/b, t}'
done
