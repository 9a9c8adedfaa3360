#!/bin/sh
#  store_conformance_mongo: the store conformance suite against store-mongo
#
#  Usage: run-conformance.sh STORE-CONFORMANCE STORE-MONGO.SO TEST-SERVER-DIR
#
#  Starts the MongoDB stand-in (TEST-SERVER-DIR/serve.mjs) on a free port,
#  runs the suite against it with the cases that need a real database
#  skipped (it does not enforce unique indexes: NOTES.md), and stops it.
#  When PARLEY_MONGO_URI names a real server (mongodb://host:port, no
#  database: each test gets a fresh parley_test_* database there), runs the
#  whole suite against that server too. The databases of the real run are
#  left behind: drop parley_test_* when convenient.
set -u

conformance=$1
plugin=$2
server_dir=$3

if [ ! -d "$server_dir/node_modules/@push.rocks/smartmongo" ]; then
    echo "FAIL: the MongoDB test server is not installed in $server_dir/node_modules." >&2
    echo "      Run: npm ci --prefix $server_dir --no-audit --no-fund   (or: make deps)" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "FAIL: node is not installed; the MongoDB test server needs it (make deps)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/store-mongo-conformance-XXXXXX")
server_pid=
stop_server () {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=
    fi
    rm -rf "$work"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

node "$server_dir/serve.mjs" 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=
tries=0
while [ -z "$port" ] && [ $tries -lt 100 ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "FAIL: the MongoDB test server stopped at start:" >&2
        cat "$work/server.err" >&2
        exit 1
    fi
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$work/server.out")
    [ -n "$port" ] || sleep 0.1
    tries=$((tries + 1))
done
if [ -z "$port" ]; then
    echo "FAIL: the MongoDB test server did not listen within 10 s" >&2
    cat "$work/server.err" >&2
    exit 1
fi

#  The stand-in is JavaScript: on a machine busy with other tests one of its
#  answers (a page of a 5000-entry timeline) can take longer than the
#  plugin's production socket timeout (2.5 s, sm_store.h), which would answer
#  unavailable. The suite checks what the store answers, not how fast, so the
#  stand-in's runs give it a generous one.
test_server_uri="mongodb://127.0.0.1:$port/parley_test_@UNIQUE@?socketTimeoutMS=30000"

echo "== store-mongo against the test server on 127.0.0.1:$port (REAL_DB cases skipped)"
STORE_CONFORMANCE_SKIP_REAL_DB=1 "$conformance" "$plugin" \
    "store-mongo.uri=$test_server_uri"
status=$?
if [ $status -ne 0 ]; then
    echo "FAIL: the conformance suite failed against the test server; its log:" >&2
    tail -50 "$work/server.err" >&2
    exit $status
fi

#  The REAL_DB cases against the stand-in as well: it lacks what they are
#  meant to check (unique indexes enforced), but store-mongo looks for taken
#  names and token hashes itself before inserting, and the stand-in keeps
#  its data across the plugin restart. This checks those look-ups; only a
#  real server checks the indexes.
echo "== store-mongo against the test server, every case (conflicts found by the plugin's own look-ups)"
STORE_CONFORMANCE_SKIP_REAL_DB=0 "$conformance" "$plugin" \
    "store-mongo.uri=$test_server_uri"
status=$?
if [ $status -ne 0 ]; then
    echo "FAIL: the full conformance suite failed against the test server; its log:" >&2
    tail -50 "$work/server.err" >&2
    exit $status
fi

#  The file cases once more with chunks of 3 bytes: every file of the suite
#  then spans several GridFS chunks, and its pieces (5 and 5 bytes) start
#  inside one, so the chunk boundaries are crossed by every write and read.
echo "== store-mongo's files in GridFS chunks of 3 bytes (the file cases)"
STORE_CONFORMANCE_SKIP_REAL_DB=0 STORE_CONFORMANCE_FILTER='*file*' "$conformance" "$plugin" \
    "store-mongo.uri=$test_server_uri" "store-mongo.file_chunk_size=3"
status=$?
if [ $status -ne 0 ]; then
    echo "FAIL: the file cases failed with chunks of 3 bytes; the server's log:" >&2
    tail -50 "$work/server.err" >&2
    exit $status
fi

if [ -n "${PARLEY_MONGO_URI:-}" ]; then
    #  The database goes in the path, before any ?options
    base=${PARLEY_MONGO_URI%%\?*}
    options=
    case "$PARLEY_MONGO_URI" in *\?*) options="?${PARLEY_MONGO_URI#*\?}" ;; esac
    base=${base%/}
    echo "== store-mongo against PARLEY_MONGO_URI (every case)"
    STORE_CONFORMANCE_SKIP_REAL_DB=0 "$conformance" "$plugin" \
        "store-mongo.uri=$base/parley_test_@UNIQUE@$options"
    status=$?
    if [ $status -ne 0 ]; then
        echo "FAIL: the conformance suite failed against PARLEY_MONGO_URI" >&2
        exit $status
    fi
else
    echo "== PARLEY_MONGO_URI is not set: unique indexes were not checked on a real MongoDB"
fi
exit 0
