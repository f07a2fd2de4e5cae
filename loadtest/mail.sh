#!/usr/bin/env bash
# Mail throughput of firstcome, on loopback, against smtp-sink (an SMTP server that
# accepts and counts everything). Two measurements, each stated within this one run:
#
#  (a) drain: mail on, the SMTP server down; issue MAIL_N coupons, each with an email
#      (so MAIL_N confirmations queue in the outbox); then start the sink and time until
#      it has every one of them: mails/s with no issue load competing. Checks that each
#      arrived exactly once (distinct Message-IDs and recipients = MAIL_N).
#  (b) issue throughput with mail on versus off: ROUNDS rounds, each one run with mail
#      on and one with FIRSTCOME_MAIL_ENABLED=false (order alternating), each a fresh
#      data dir and campaign, `wrk -t2 -c64 -d${DURATION}s -s loadtest/wrk/issue.lua` (with email).
#      Mail-on runs also report the mails/s delivered during the run and, for up to
#      DRAIN_WINDOW s after it, the drain rate and whether every mail has arrived.
#
#   loadtest/mail.sh   # env: ROUNDS=3 DURATION=10 MAIL_N=20000 MAIL_WORKERS=8 POOL_MAX=8
#                      #      DRAIN_WINDOW=10 DRAIN_TIMEOUT=240 CONNECTIONS=64
#
# Needs wrk and curl on PATH. Everything runs on 127.0.0.1 in a temp dir (KEEP=1 keeps it;
# TMPDIR=/dev/shm puts the data dirs on tmpfs, which takes the disk's flush latency, and
# its noise on a shared machine, out of (b)). Exits 1 if a check failed: an issue answered
# other than 201, a mail lost or received twice, a failed send while the sink was up, a
# WARN/ERROR in firstcome's log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
MAIL_N=${MAIL_N:-20000}
MAIL_WORKERS=${MAIL_WORKERS:-8}
POOL_MAX=${POOL_MAX:-8}
DRAIN_WINDOW=${DRAIN_WINDOW:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-240}
STOCK=10000000 # phase (b): never sold out

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool is not on PATH" >&2; exit 1; }
done

cargo build --release -q -p firstcome-api -p firstcome-loadtest
BIN=${CARGO_TARGET_DIR:-target}/release
# issue.lua with_email=1 (every coupon queues a confirmation); the drain also stops at
# its first 409 (stop_on_409=1), so exactly MAIL_N coupons are issued.
LUA=loadtest/wrk/issue.lua

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

export FIRSTCOME_ADMIN_KEY="mail-admin-$RANDOM$RANDOM$RANDOM"
export FIRSTCOME_ISSUER_KEY="mail-issuer-$RANDOM$RANDOM$RANDOM"
export FIRSTCOME_LOG=${FIRSTCOME_LOG:-info}
FAILED=0
fail() { echo "CHECK FAILED: $*" >&2; FAILED=1; }

# A port nobody listens on (bash's /dev/tcp: a refused connect means free), below the
# ephemeral range: in phase (a) firstcome connects to the SMTP port thousands of times
# while nothing listens there, and a connect from an ephemeral port equal to the target
# port connects the socket to itself (TCP simultaneous open), taking the port.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local p span=$((EPHEMERAL_LOW - 10000))
    [ "$span" -gt 1000 ] || span=1000
    while :; do
        p=$((10000 + RANDOM % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
        "/proc/$1/stat" 2>/dev/null || echo 0
}
# "busy total" jiffies of the whole host (all cores), from /proc/stat.
host_jiffies() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
host_busy_pct() { # "busy total" before, "busy total" after -> % of one core
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$2"
    calc "100 * $(nproc) * ($b1 - $b0) / ($t1 - $t0)" 0
}
rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Stops a process started here and waits for it (SIGKILL after 15 s).
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 150); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "pid $1 ignored SIGTERM; killing it" >&2
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# smtp-sink: SINK_PID, SINK_LOG. Its first line is the port; then a count line every 100 ms.
start_sink() { # port name
    SINK_LOG="$TMP/sink-$2.log"
    "$BIN/smtp-sink" --port "$1" --threads 256 >"$SINK_LOG" 2>"$TMP/sink-$2.err" &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    for _ in $(seq 1 100); do
        [ -s "$SINK_LOG" ] && return 0
        sleep 0.05
    done
    cat "$TMP/sink-$2.err" >&2
    echo "smtp-sink did not start" >&2
    exit 1
}
# The newest complete count line: "received at last ids rcpts sessions" (numbers only).
# The second-to-last line is read, the last one may still be being written.
sink_state() {
    local s
    s=$(tail -n 2 "$SINK_LOG" | head -n 1 | awk '$1 == "received" { print $2, $4, $6, $8, $10, $12 }')
    echo "${s:-0 0 0 0 0 0}"
}

write_config() { # file smtp-port
    cat >"$1" <<EOF
[mail]
workers = $MAIL_WORKERS
[mail.smtp]
host = "127.0.0.1"
port = $2
security = "none"
pool_max = $POOL_MAX
EOF
}

# firstcome: FC_PID, FC_URL.
start_firstcome() { # on|off name config
    local port dir="$TMP/data-$2"
    port=$(free_port)
    local enabled=false
    [ "$1" = on ] && enabled=true
    FIRSTCOME_MAIL_ENABLED=$enabled "$BIN/firstcome" serve --config "$3" --data-dir "$dir" \
        --listen "127.0.0.1:$port" >"$TMP/firstcome-$2.log" 2>&1 &
    FC_PID=$!
    PIDS+=("$FC_PID")
    FC_URL="http://127.0.0.1:$port"
    wait_port "$port"
}

create_campaign() { # stock
    curl -sf -X POST "$FC_URL/v1/campaigns" -H "Authorization: Bearer $FIRSTCOME_ADMIN_KEY" \
        -H 'Content-Type: application/json' -d "{\"name\":\"mail\",\"total_stock\":$1}" |
        sed -n 's/^{"id":"\([^"]*\)".*/\1/p'
}
campaign_issued() { # campaign id
    curl -sf "$FC_URL/v1/campaigns/$1" -H "Authorization: Bearer $FIRSTCOME_ISSUER_KEY" |
        sed -n 's/.*"issued":\([0-9]*\).*/\1/p'
}

# Sum of a metric over its label sets (0 if absent).
metrics() { curl -sf "$FC_URL/metrics" >"$TMP/metrics.txt" || : >"$TMP/metrics.txt"; }
metric() {
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.6f", s + 0 }' \
        "$TMP/metrics.txt"
}
log_problems() { grep -c -E '\b(WARN|ERROR)\b' "$1" || true; }

wrk_p99_ms() { # wrk output file
    awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.2f", v * f }' "$1"
}

##### (a) drain of a full outbox, no issue load #####

echo "== (a) drain: $MAIL_N mails queued while the SMTP server is down" >&2
SMTP_PORT=$(free_port)
write_config "$TMP/drain.toml" "$SMTP_PORT"
start_firstcome on drain "$TMP/drain.toml"
cid=$(create_campaign "$MAIL_N")
wrk -t2 -c"$CONNECTIONS" -d120s -s "$LUA" "$FC_URL" -- "$cid" "$FIRSTCOME_ISSUER_KEY" drain 1 1 \
    >"$TMP/wrk-drain.txt" 2>&1 &
WRK_PID=$!
t_issue=$(now)
issued=0
while [ "$issued" -lt "$MAIL_N" ] && kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 0.1
    issued=$(campaign_issued "$cid")
    issued=${issued:-0}
done
t_issued=$(now)
sleep 0.5 # the last responses (409 sold_out) arrive; the threads stop
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
[ "$issued" -eq "$MAIL_N" ] || fail "(a) issued $issued of $MAIL_N"
sleep 0.5

fc_cpu0=$(cpu_secs "$FC_PID")
metrics
down_failed=$(metric firstcome_mail_failed_total)
t_up=$(now)
a_h0=$(host_jiffies)
start_sink "$SMTP_PORT" drain
t0=$(now)
declare -A REACHED
deadline=$(calc "$t0 + $DRAIN_TIMEOUT" 3)
while :; do
    read -r n at last ids rcpts sessions <<<"$(sink_state)"
    for pct in 10 50 90; do
        if [ -z "${REACHED[$pct]:-}" ] && [ "$n" -ge $((MAIL_N * pct / 100)) ]; then
            REACHED[$pct]=$at
        fi
    done
    [ "$n" -ge "$MAIL_N" ] && break
    if awk -v a="$(now)" -v d="$deadline" 'BEGIN { exit !(a > d) }'; then
        fail "(a) only $n of $MAIL_N mails after ${DRAIN_TIMEOUT}s"
        break
    fi
    sleep 0.1
done
t_end=$(now)
a_h1=$(host_jiffies)
fc_cpu1=$(cpu_secs "$FC_PID")
sink_cpu=$(cpu_secs "$SINK_PID")
sleep 1.5 # anything sent twice would arrive now
read -r n at last ids rcpts sessions <<<"$(sink_state)"
metrics
a_sent=$(metric firstcome_mail_sent_total)
a_depth=$(metric firstcome_mail_outbox_depth)
a_dead=$(metric firstcome_mail_dead_total)
a_failed=$(metric firstcome_mail_failed_total)
a_send_ms=$(awk -v s="$(metric firstcome_mail_send_duration_seconds_sum)" \
    -v c="$(metric firstcome_mail_send_duration_seconds_count)" 'BEGIN { printf "%.1f", c ? 1000 * s / c : 0 }')
a_rss=$(rss_mb "$FC_PID")
[ "$n" -eq "$MAIL_N" ] || fail "(a) sink received $n mails, expected $MAIL_N"
[ "$ids" -eq "$n" ] || fail "(a) $n mails but $ids distinct Message-IDs"
[ "$rcpts" -eq "$n" ] || fail "(a) $n mails but $rcpts distinct recipients"
stop_pid "$FC_PID"
stop_pid "$SINK_PID"
a_problems=$(log_problems "$TMP/firstcome-drain.log")

drain_s=$(calc "$last - $t0" 2)
drain_rate=$(calc "$n / ($last - $t0)" 0)
if [ -n "${REACHED[10]:-}" ] && [ -n "${REACHED[90]:-}" ]; then
    bulk_rate=$(calc "0.8 * $MAIL_N / (${REACHED[90]} - ${REACHED[10]})" 0)
else
    bulk_rate=n/a
fi
cpu_wall=$(calc "$t_end - $t0" 2)

##### (b) issue throughput, mail on and off, interleaved #####

start_sink 0 rounds
SINK_PORT=$(head -n 1 "$SINK_LOG")
write_config "$TMP/rounds.toml" "$SINK_PORT"

declare -A RPS
ROWS=()
run_round() { # on|off round
    local mode=$1 round=$2 name="$1-$2" out="$TMP/wrk-$1-$2.txt"
    echo "== (b) round $round: mail $mode" >&2
    start_firstcome "$mode" "$name" "$TMP/rounds.toml"
    local cid
    cid=$(create_campaign "$STOCK")
    local n0 at0
    read -r n0 at0 _ <<<"$(sink_state)"
    local c0 h0 h1 t0 t1
    c0=$(cpu_secs "$FC_PID")
    h0=$(host_jiffies)
    t0=$(now)
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$FC_URL" -- \
        "$cid" "$FIRSTCOME_ISSUER_KEY" "$name" 1 >"$out" 2>&1
    t1=$(now)
    h1=$(host_jiffies)
    local c1 rps p99 ok other issued rss
    c1=$(cpu_secs "$FC_PID")
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    p99=$(wrk_p99_ms "$out")
    ok=$(awk '$1 == "status" && $2 == "201:" { print $3 }' "$out")
    other=$(awk '$1 == "status" && $2 != "201:" { s += $3 } END { print s + 0 }' "$out")
    issued=$(campaign_issued "$cid")
    rss=$(rss_mb "$FC_PID")
    metrics
    local writes batches reqs flush
    flush=$(awk -v s="$(metric firstcome_commit_flush_seconds_sum)" \
        -v c="$(metric firstcome_commit_flush_seconds_count)" 'BEGIN { printf "%.2f", c ? 1000 * s / c : 0 }')
    writes=$(metric firstcome_commit_batch_writes_sum)
    batches=$(metric firstcome_commit_batch_requests_count)
    reqs=$(metric firstcome_commit_batch_requests_sum)
    [ "${ok:-0}" -gt 0 ] || fail "round $name: no 201"
    [ "$other" -eq 0 ] || fail "round $name: $other answers other than 201 (see $out)"
    RPS[$mode]+="$rps "
    LAST[$mode]=$rps
    local during="-" drain="-" delivered="-" all="-"
    if [ "$mode" = on ]; then
        # Mails received during the run, then the drain for up to DRAIN_WINDOW seconds.
        local n1 at1 n2 at2 last ids rcpts sessions end
        read -r n1 at1 _ <<<"$(sink_state)"
        during=$(calc "($n1 - $n0) / ($at1 - $t0)" 0)
        end=$(calc "$t1 + $DRAIN_WINDOW" 3)
        while :; do
            read -r n2 at2 last ids rcpts sessions <<<"$(sink_state)"
            [ $((n2 - n0)) -ge "$issued" ] && break
            awk -v a="$(now)" -v d="$end" 'BEGIN { exit !(a > d) }' && break
            sleep 0.1
        done
        drain=$(calc "($n2 - $n1) / ($at2 - $at1)" 0)
        delivered="$((n2 - n0))/$issued"
        if [ $((n2 - n0)) -ge "$issued" ]; then
            all=$(calc "$last - $t0" 1)
        else
            # Projected at the drain rate: time from the start of the run.
            all="~$(calc "$at2 - $t0 + ($issued - $n2 + $n0) / (($n2 - $n1) / ($at2 - $at1))" 0)"
        fi
        [ "$ids" -eq "$n2" ] || fail "round $name: sink has $n2 mails but $ids distinct Message-IDs"
        [ "$rcpts" -eq "$n2" ] || fail "round $name: sink has $n2 mails but $rcpts distinct recipients"
        metrics
        local dead failed
        dead=$(metric firstcome_mail_dead_total)
        failed=$(metric firstcome_mail_failed_total)
        [ "$(calc "$dead + $failed" 0)" -eq 0 ] || fail "round $name: $failed failed, $dead dead sends"
        echo "   mail: sent_total $(metric firstcome_mail_sent_total | cut -d. -f1)," \
            "outbox depth $(metric firstcome_mail_outbox_depth | cut -d. -f1)," \
            "mean send $(awk -v s="$(metric firstcome_mail_send_duration_seconds_sum)" \
                -v c="$(metric firstcome_mail_send_duration_seconds_count)" \
                'BEGIN { printf "%.1f", c ? 1000 * s / c : 0 }') ms," \
            "sink sessions so far $sessions, RSS $(rss_mb "$FC_PID") MB" >&2
    fi
    stop_pid "$FC_PID"
    local problems
    problems=$(log_problems "$TMP/firstcome-$name.log")
    [ "$problems" -eq 0 ] || fail "round $name: $problems WARN/ERROR lines in the log"
    ROWS+=("$(printf '%-5s %-4s %9s %8s %8s %8s %6s %7s %8s %8s %8s %7s %8s %13s %9s %6s' \
        "$round" "$mode" "$rps" "$p99" "$ok" "$issued" \
        "$(calc "$writes / $issued" 2)" "$(calc "$reqs / $batches" 0)" "$flush" \
        "$(calc "100 * ($c1 - $c0) / ($t1 - $t0)" 0)" "$(host_busy_pct "$h0" "$h1")" "$during" "$drain" "$delivered" "$all" "$rss")")
}

declare -A LAST
PAIR=""
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(on off); else order=(off on); fi
    for mode in "${order[@]}"; do run_round "$mode" "$round"; done
    PAIR+="$(calc "${LAST[on]} / ${LAST[off]}" 3) "
done
stop_pid "$SINK_PID"

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

echo
echo "(a) drain of a full outbox: $MAIL_N confirmations queued while the SMTP server was down"
echo "    (issued in $(calc "$t_issued - $t_issue" 1) s; $(calc "$down_failed" 0) send attempts failed in the $(calc "$t_up - $t_issue" 1) s"
echo "    until the sink started: connection refused, retried with backoff);"
echo "    workers $MAIL_WORKERS, pool_max $POOL_MAX, security none, loopback"
echo "    all $n received after $drain_s s: $drain_rate mails/s (10%->90%: $bulk_rate mails/s)"
echo "    distinct Message-IDs $ids, distinct recipients $rcpts, sink sessions $sessions;" \
    "firstcome: sent_total $(calc "$a_sent" 0), outbox depth $(calc "$a_depth" 0), dead $(calc "$a_dead" 0)," \
    "failed $(calc "$a_failed" 0), WARN/ERROR log lines $a_problems"
echo "    mean send (lettre, per mail) $a_send_ms ms; CPU during the drain: firstcome" \
    "$(calc "100 * ($fc_cpu1 - $fc_cpu0) / $cpu_wall" 0)%, smtp-sink $(calc "100 * $sink_cpu / $cpu_wall" 0)%," \
    "whole host $(host_busy_pct "$a_h0" "$a_h1")% of one core ($(nproc) cores); firstcome RSS $a_rss MB"
echo
echo "(b) issue with email, wrk -t2 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds interleaved (fresh data dir and campaign each)"
printf '%-5s %-4s %9s %8s %8s %8s %6s %7s %8s %8s %8s %7s %8s %13s %9s %6s\n' \
    round mail "req/s" "p99 ms" 201s issued "wr/iss" "batch" "flush ms" "fc CPU%" "hostCPU%" "mail/s" "drain/s" "delivered" "all in s" "RSS MB"
printf '%s\n' "${ROWS[@]}"
on=$(echo "${RPS[on]}" | median)
off=$(echo "${RPS[off]}" | median)
echo
echo "median issue req/s: mail on $on, mail off $off; on/off = $(calc "$on / $off" 3)"
echo "on/off within each round: $PAIR(median $(echo "$PAIR" | median))"
cat <<EOF
(mail/s: received by the sink during the wrk run; drain/s: after it, for up to ${DRAIN_WINDOW} s;
 delivered: by the end of that window; 'all in s': from the start of the run until the last
 mail, ~ = projected at the drain rate; wr/iss: sled writes per issued coupon; batch:
 requests per group commit; flush ms: mean group-commit flush; fc CPU%: firstcome,
 hostCPU%: all processes, in % of one core ($(nproc) cores = $(($(nproc) * 100))%), during the run)
EOF
if [ "$FAILED" -ne 0 ]; then
    echo "some checks failed (see above)" >&2
    exit 1
fi
