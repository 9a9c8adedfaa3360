#!/usr/bin/env bash
# The standard benchmark suite, a few minutes: `make bench` runs this.
# Builds nothing: it uses BUILD_DIR (default build/, which `make build` makes as
# RelWithDebInfo). Starts parley on a temporary --data with cheap password
# hashes and no message rate limits, runs
#   baseline N=1000, fanout N=1000 R=100 for 10 s, connect N=2000,
#   latency 5 s, history H=20000 C=10 for 5 s,
#   rooms M=100 K=5 and pm P=100, closed loop W=4, 10 s each,
#   the same with --nonce=time (as the web client sends: its own path through
#   the server, the store's nonce index),
#   baseline and fanout --max N=1000 S=10 (2 s steps, at most 6)
# and writes the summary lines, the JSON and the machine's description to
# OUT (default BUILD_DIR/bench-results/bench-YYYYmmdd-HHMMSS.txt and .json).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
parley=$build/bin/parley
bench=$build/bin/parley-bench
stamp=$(date +%Y%m%d-%H%M%S)
out=${OUT:-$build/bench-results/bench-$stamp.txt}
json=${out%.txt}.json
port=${PORT:-18080}

for file in "$parley" "$bench"; do
    if [ ! -x "$file" ]; then
        echo "run-bench: $file is missing: run 'make build' first (or set BUILD_DIR)" >&2
        exit 2
    fi
done
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [ "$build_type" != "RelWithDebInfo" ] && [ "$build_type" != "Release" ]; then
    echo "run-bench: warning: $build is a '$build_type' build; figures are meant for RelWithDebInfo" >&2
fi
if grep -q '^PARLEY_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "run-bench: warning: $build is built with sanitizers; its figures say little" >&2
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
data=$(mktemp -d /tmp/parley-bench-data-XXXXXX)
log=$data/parley.log
mkdir -p "$(dirname "$out")"
"$parley" --listen "127.0.0.1:$port" --data "$data" \
    --option auth.ops_limit=1 --option auth.mem_limit=8192 --option rooms.msg_rate=0 \
    --option pm.msg_rate=0 --option auth.register_rate=0 >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "run-bench: parley did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

{
    echo "# parley-bench $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (modified)')"
    echo "# build: $build ($build_type)"
    echo "# nproc: $(nproc)"
    echo "# cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "# kernel: $(uname -srm)"
    echo "# memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out"

status=0
parts=()
# One parley-bench invocation per line of the suite; each writes a JSON part
run() {
    local part="$json.part${#parts[@]}"
    parts+=("$part")
    "$bench" --quiet --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" --json "$part" "$@" \
        | tee -a "$out" || status=1
}
run --members 1000 --senders 10 --rate 100 --duration 10 baseline fanout
run --members 2000 connect
run --duration 5 --entries 20000 --senders 10 --readers 10 latency history
run --rooms 100 --room-members 5 --pairs 100 --rate 0 --inflight 4 --duration 10 rooms pm
run --rooms 100 --room-members 5 --pairs 100 --rate 0 --inflight 4 --duration 10 --nonce=time \
    rooms pm
# --max after a short baseline, so that its ceiling is a fraction of baseline's
run --members 1000 --senders 10 --rate 100 --duration 3 --max --step 2 --max-steps 6 \
    --p99-bound 50 baseline fanout
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"

# One JSON file: the machine and every scenario
python3 - "$json" "$out" "${parts[@]}" <<'PY'
import json, sys
target, text, *parts = sys.argv[1:]
machine = [line[2:].rstrip('\n') for line in open(text) if line.startswith('# ')]
scenarios = []
for part in parts:
    try:
        scenarios += json.load(open(part))['scenarios']
    except (OSError, ValueError):
        pass
json.dump({'machine': machine, 'scenarios': scenarios}, open(target, 'w'), indent=2)
PY
rm -f "${parts[@]}"
echo "run-bench: results in $out and $json"
exit $status
