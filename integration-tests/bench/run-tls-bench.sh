#!/usr/bin/env bash
# The cost of TLS, in one sitting: two parley servers of the same build, one
# plain and one with --tls-cert/--tls-key (a throwaway self-signed certificate),
# and parley-bench's fanout against each in turn, ROUNDS times (default 2), so
# that the machine's load falls on both alike. Besides parley-bench's summary
# (which, given --server-pid, ends with the CPU per delivery over the measured
# phase alone: parley-bench's own, the server's, and the server's main thread's,
# the gateway's loop), each line gets the server's CPU time over the whole run
# (setup included: registrations, joins, TLS handshakes). BUILD_DIR as
# run-bench.sh; FANOUT overrides the fanout arguments (default: N=1000 S=10
# R=100 for 10 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
parley=$build/bin/parley
bench=$build/bin/parley-bench
port=${PORT:-18090}
rounds=${ROUNDS:-2}
read -r -a fanout <<<"${FANOUT:---members 1000 --senders 10 --rate 100 --duration 10}"

work=$(mktemp -d /tmp/parley-tls-bench-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# start NAME PORT [ARGS...]: a parley on PORT with its own data folder
start() {
    local name=$1 at=$2
    shift 2
    mkdir -p "$work/$name"
    "$parley" --listen "127.0.0.1:$at" --data "$work/$name" \
        --option auth.ops_limit=1 --option auth.mem_limit=8192 --option rooms.msg_rate=0 \
        --option pm.msg_rate=0 --option auth.register_rate=0 "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
}
start plain "$port"
start tls $((port + 1)) --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 \
        && curl -sfk "https://127.0.0.1:$((port + 1))/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# CPU seconds the process has used so far (user + system)
cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

echo "# run-tls-bench $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$root" rev-parse --short HEAD), $(nproc) cores"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    for mode in plain tls; do
        if [ "$mode" = plain ]; then pid=${pids[0]} url=ws://127.0.0.1:$port/ws
        else pid=${pids[1]} url=wss://127.0.0.1:$((port + 1))/ws; fi
        before=$(cpu "$pid")
        #  A failed run (a setup refused on a loaded machine) says why, and the rounds go on
        if ! "$bench" --quiet --url "$url" --server-pid "$pid" --json "$work/run.json" \
            "${fanout[@]}" fanout >"$work/run.txt" 2>&1; then
            echo "round $round $mode: failed: $(cat "$work/run.txt")"
            continue
        fi
        after=$(cpu "$pid")
        deliveries=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scenarios"][0]["deliveries"])' "$work/run.json")
        echo "round $round $mode: $(cat "$work/run.txt")"
        awk -v b="$before" -v a="$after" -v d="$deliveries" \
            'BEGIN { printf "    server CPU %.2f s over the run (setup included), %.2f us per delivery\n", a - b, (a - b) * 1e6 / (d ? d : 1) }'
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
