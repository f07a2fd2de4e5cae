#!/usr/bin/env bash
# Lints what firstcome ships for Prometheus, with Prometheus's own tool:
#   - ops/prometheus/rules.yml   (promtool check rules, lint problems fatal)
#   - ops/prometheus/prometheus.yml (promtool check config, which also loads the rules)
#   - ops/prometheus/rules.test.yml (promtool test rules: each alert fires on its cue)
#   - the /metrics output of the real binary after some traffic (promtool check metrics)
# A non-zero exit fails the step, and so does any promtool output other than its progress
# and SUCCESS lines (`check metrics` prints nothing at all for a clean exposition): a
# warning is a finding too.
#   .ci/promtool.sh     (builds the debug binary if needed; CARGO_TARGET_DIR is honoured)
#   FIRSTCOME_BIN=target/release/firstcome .ci/promtool.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; }
promtool --version 2>&1 | head -n 1

fail=0
# Runs promtool, shows its output, and fails the step on a non-zero exit or on any line
# that is not one of its progress/SUCCESS lines.
check() {
    local out rc=0
    out=$(promtool "$@" 2>&1) || rc=$?
    printf '%s\n' "$out"
    if [ "$rc" -ne 0 ] || printf '%s\n' "$out" | grep -Ev '^(Checking | *SUCCESS(: |$)|Unit Testing: |$)' >/dev/null; then
        echo "promtool.sh: 'promtool $*' reported problems (exit $rc)" >&2
        fail=1
    fi
}

check check rules --lint=all --lint-fatal ops/prometheus/rules.yml
check check config --lint=all --lint-fatal ops/prometheus/prometheus.yml
# The alerts fire when they should (and not before): series in, alerts out.
check test rules ops/prometheus/rules.test.yml

# The binary under test: FIRSTCOME_BIN, or the debug build (brought up to date; right after
# `cargo test` that is a no-op).
bin=${FIRSTCOME_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q -p firstcome-api --bin firstcome
    bin="${CARGO_TARGET_DIR:-target}/debug/firstcome"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

admin=promtool-admin-key-0123456789
issuer=promtool-issuer-key-0123456789
# Port 0: the kernel picks a free loopback port, and the server prints the one it got.
FIRSTCOME_DATA_DIR="$work/data" FIRSTCOME_LISTEN=127.0.0.1:0 \
    FIRSTCOME_ADMIN_KEY=$admin FIRSTCOME_ISSUER_KEY=$issuer \
    FIRSTCOME_CACHE_CAPACITY_MB=16 FIRSTCOME_LOG=warn \
    "$bin" serve >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
base=
for _ in $(seq 1 300); do
    base=$(sed -n 's/^firstcome listening on //p' "$work/stdout")
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "promtool.sh: firstcome did not start" >&2
    cat "$work/stderr" >&2
    exit 1
fi

# Fails the step if a request does not get the status it should: traffic that silently
# went wrong would lint fewer metrics than it should.
req() {
    local want=$1 key=$2 method=$3 path=$4 body=${5:-}
    local args=(-s -o /dev/null -w '%{http_code}' -X "$method")
    [ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
    local got
    got=$(curl "${args[@]}" "$base$path")
    if [ "$got" != "$want" ]; then
        echo "promtool.sh: $method $path answered $got, not $want" >&2
        exit 1
    fi
}

campaign=$(curl -sf -X POST "$base/v1/campaigns" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d '{"name":"promtool","total_stock":1,"per_user_limit":1,"coupon_valid_for_secs":3600}' |
    sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
[ -n "$campaign" ] || { echo "promtool.sh: creating a campaign failed" >&2; exit 1; }
req 201 "$issuer" POST "/v1/campaigns/$campaign/issue" '{"user_id":"alice","email":"alice@example.test"}'
req 409 "$issuer" POST "/v1/campaigns/$campaign/issue" '{"user_id":"bob"}'
req 200 "$issuer" POST "/v1/coupons/$campaign-0/redeem" '{"user_id":"alice","order_id":"o-1"}'
req 404 "$issuer" GET /no-such-route
req 401 "" GET "/v1/campaigns/$campaign"
req 200 "" GET /readyz

# The confirmation goes out in the background (to .eml files): wait for it, so that the
# mail metrics are in the scrape too.
for _ in $(seq 1 100); do
    curl -sf "$base/metrics" | grep -q '^firstcome_mail_sent_total{kind="confirmation"} 1' && break
    sleep 0.1
done

curl -sf "$base/metrics" >"$work/metrics"
echo "checking the /metrics of $base ($(grep -cv '^#' "$work/metrics") samples)"
rc=0
out=$(promtool check metrics <"$work/metrics" 2>&1) || rc=$?
if [ -n "$out" ] || [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out"
    echo "promtool.sh: 'promtool check metrics' reported problems (exit $rc)" >&2
    fail=1
fi

[ "$fail" -eq 0 ] && echo "promtool.sh: ok"
exit "$fail"
