# Shell helpers shared by compare.sh and mail.sh (sourced, not run).

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

# Builds the release binaries (BIN is where they are), makes TMP, and on exit stops every
# pid in PIDS and removes TMP. Exports fresh API keys named after the caller ($1).
release_build_and_tmp() {
    cargo build --release -q -p firstcome-api -p firstcome-loadtest
    BIN=${CARGO_TARGET_DIR:-target}/release
    TMP=$(mktemp -d)
    PIDS=()
    trap _stop_pids_and_tmp EXIT
    export FIRSTCOME_ADMIN_KEY="$1-admin-$RANDOM$RANDOM"
    export FIRSTCOME_ISSUER_KEY="$1-issuer-$RANDOM$RANDOM"
}

_stop_pids_and_tmp() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
