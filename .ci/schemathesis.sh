#!/usr/bin/env bash
# Fuzzes the running API from its own OpenAPI document with schemathesis (PyPI, 4.x):
# examples, coverage, fuzzing and the stateful phase (which follows the document's
# links: create campaign -> issue -> redeem -> cancel-redemption), every check, and
# fails on any failure.
#   bash .ci/schemathesis.sh            # from the repository root
# Bounded: at most SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase (default 25),
# SCHEMATHESIS_MAX_TIME seconds in all (default 120; the fuzzing and stateful phases
# repeat until it is spent), about 2.5 minutes with the build cached on 2 cores.
# Also: SCHEMATHESIS_SEED (default random), SCHEMATHESIS_MAX_STEPS (steps per stateful
# scenario, default 16), SCHEMATHESIS_VENV (default $CARGO_TARGET_DIR/schemathesis-venv),
# SCHEMATHESIS_EXTRA_ARGS (more `schemathesis run` options, e.g. `--report ndjson`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
printf '\n==> %s\n' "schemathesis against a live firstcome (.ci/schemathesis.sh)"

target_dir="${CARGO_TARGET_DIR:-target}"
venv="${SCHEMATHESIS_VENV:-$target_dir/schemathesis-venv}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
max_time="${SCHEMATHESIS_MAX_TIME:-120}"

# Python: Debian's is externally managed (PEP 668), so schemathesis goes in a venv.
if [ ! -x "$venv/bin/schemathesis" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
"$venv/bin/schemathesis" --version

# The binary under test: FIRSTCOME_BIN (CI passes the one `cargo test --workspace` just
# built, so nothing is compiled again), or a debug build brought up to date.
bin=${FIRSTCOME_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q -p firstcome-api --bin firstcome
    bin="$target_dir/debug/firstcome"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port: bind port 0, read it back, release it.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
admin_key="schemathesis-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
issuer_key="schemathesis-issuer-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"

FIRSTCOME_DATA_DIR="$work/data" \
FIRSTCOME_LISTEN="127.0.0.1:$port" \
FIRSTCOME_ADMIN_KEY="$admin_key" \
FIRSTCOME_ISSUER_KEY="$issuer_key" \
FIRSTCOME_CACHE_CAPACITY_MB=32 \
FIRSTCOME_LOG="${FIRSTCOME_LOG:-warn}" \
    "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 200); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    cat "$work/server.log"
    echo "firstcome did not become ready on $base" >&2
    exit 1
fi

# Statuses that valid requests may get besides the defaults (2xx, 401, 403, 404, 409,
# ...): 400 for the rules a schema cannot state (times relative to now, such as `ends_at`
# in the future; an e-mail address lettre's parser refuses), and 422 when generated cases
# happen to send one Idempotency-Key with two different requests.
#
# The stateful phase follows the document's own links only (schemathesis would infer
# ninety more from names, which spread the same budget thin), in longer scenarios than
# its default 6 steps, so that create -> issue -> redeem -> cancel-redemption is walked.
cat >"$work/schemathesis.toml" <<TOML
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]

[phases.stateful]
max-steps = ${SCHEMATHESIS_MAX_STEPS:-16}

[phases.stateful.inference]
algorithms = []
TOML

seed_args=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    seed_args=(--seed "$SCHEMATHESIS_SEED")
fi

venv="$(cd "$venv" && pwd)"
status=0
# The live event streams are left out: a stream of an existing campaign never ends, so
# every case would run into the request timeout (api/tests/it/live.rs tests them).
# One worker: Python 3.11's `ast` is not thread-safe under schemathesis. The admin key
# may call every operation. Run from the temp dir: schemathesis keeps a `.schemathesis/`
# cache in the working directory, which does not belong in the repository.
(cd "$work" && "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --workers 1 \
    --phases examples,coverage,fuzzing,stateful \
    --checks all \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --header "Authorization: Bearer $admin_key" \
    --request-timeout 10 \
    --exclude-path-regex '/events$' \
    ${SCHEMATHESIS_EXTRA_ARGS:-} \
    "${seed_args[@]}") || status=$?

if [ "$status" -ne 0 ]; then
    echo "---- server log (last 50 lines) ----"
    tail -n 50 "$work/server.log"
fi
exit "$status"
