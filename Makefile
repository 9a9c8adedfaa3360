# Parley: `make run` and `make test` do all the setup on a fresh Debian 12 machine.
#   make run     install what is missing, build, start everything on http://127.0.0.1:8080
#   make test    install what is missing, build with sanitizers, run every test
#   make build   only build (into build/)
#   make bench   the standard load suite (a few minutes) against build/; results in build/bench-results
#   make fuzz    run each libFuzzer target (FUZZ_TARGETS) for FUZZ_SECONDS (clang, into build-fuzz);
#                `make test` runs each for FUZZ_SMOKE_SECONDS (make fuzz-smoke)

BUILD_DIR   ?= build
TEST_DIR    ?= build-test
FUZZ_DIR    ?= build-fuzz
LISTEN      ?= 127.0.0.1:8080
DATA        ?= ./data
FUZZ_SECONDS ?= 60
JOBS        ?= $(shell nproc)

.PHONY: all deps system-deps npm-deps build run test unit-tests integration-tests bench fuzz \
        fuzz-build fuzz-smoke clean

all: build

deps: system-deps npm-deps

system-deps:
	@bash deploy/install-deps.sh

# npm ci only when the lock file changed since the last install
npm-deps: web/node_modules/.package-lock.json integration-tests/node_modules/.package-lock.json \
          plugins/store-mongo/test-server/node_modules/.package-lock.json

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

integration-tests/node_modules/.package-lock.json: integration-tests/package-lock.json
	cd integration-tests && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
	@touch $@

# The MongoDB wire-compatible server the store-mongo tests run against
plugins/store-mongo/test-server/node_modules/.package-lock.json: plugins/store-mongo/test-server/package-lock.json
	cd plugins/store-mongo/test-server && npm ci --no-audit --no-fund
	@touch $@

build:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: deps build
	@mkdir -p $(DATA)
	$(BUILD_DIR)/bin/parley --listen $(LISTEN) --data $(DATA)

# The optimized build too: it is what `make run` starts, and gcc warns about
# some things (format truncation) only when optimizing
test: deps build
	cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZE=ON
	cmake --build $(TEST_DIR) -j $(JOBS)
	$(MAKE) unit-tests integration-tests fuzz-smoke

unit-tests:
	ctest --test-dir $(TEST_DIR) --output-on-failure

# Everything on the embedded default, then the account (auth, accounts), presence, rooms,
# private-message and files suites (over the protocol and over HTTP), and the metrics' (the
# store's figures), again on store-mongo against its wire-compatible test server
integration-tests:
	cd integration-tests && PARLEY_BUILD=$(abspath $(TEST_DIR)) node --test --test-concurrency=1 tests/
	cd integration-tests && PARLEY_BUILD=$(abspath $(TEST_DIR)) node --test --test-concurrency=1 \
	    $(wildcard $(abspath plugins)/*/tests/*.test.js)
	cd integration-tests && PARLEY_BUILD=$(abspath $(TEST_DIR)) PARLEY_TEST_STORE=mongo \
	    node --test --test-concurrency=1 tests/10-auth.test.js tests/11-presence.test.js tests/18-accounts.test.js \
	    tests/14-auth-limits.test.js tests/15-presence-pages.test.js \
	    tests/20-rooms.test.js tests/23-rooms-limits.test.js tests/24-nonce.test.js \
	    tests/25-read-markers.test.js tests/26-nonce-crash.test.js tests/27-timeline.test.js \
	    tests/28-room-admin.test.js tests/29-typing.test.js tests/30-pm.test.js \
	    tests/33-pm-limits.test.js tests/34-pm-nonce.test.js tests/35-pm-read.test.js \
	    tests/36-pm-timeline.test.js tests/37-search.test.js tests/38-files.test.js \
	    tests/39-files-http.test.js \
	    tests/73-metrics.test.js

bench: deps build
	BUILD_DIR=$(abspath $(BUILD_DIR)) bash integration-tests/bench/run-bench.sh

# Every libFuzzer target, one word each: a new target is its word here, a CMake
# target built into $(FUZZ_DIR)/fuzz/<target> (RUNTIME_OUTPUT_DIRECTORY
# ${CMAKE_BINARY_DIR}/fuzz) and seeds in <component>/fuzz/corpus/<target>/ (found
# by that pattern). New inputs go to $(FUZZ_DIR)/corpus/<target>, never into the
# repository. A crash, a leak or a 30 s hang fails the run and leaves its input
# in $(FUZZ_DIR)/artifacts/.
FUZZ_TARGETS ?= fuzz_transcode fuzz_envelope \
                fuzz_auth fuzz_presence fuzz_rooms fuzz_pm fuzz_files fuzz_search fuzz_store_sqlite \
                fuzz_store_mongo fuzz_example fuzz_gw_web fuzz_gw_filehdr fuzz_mention fuzz_words
FUZZ_SMOKE_SECONDS ?= 15

fuzz-build:
	CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_FUZZ=ON
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZ_TARGETS)

# Runs every target for $(1) seconds; each one's whole output goes to
# $(FUZZ_DIR)/logs/<target>.log (msgpack-c sizes allocations from declared
# counts: let a huge one fail instead of aborting, see proto/README.md)
define fuzz-run
	@mkdir -p $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs
	@for target in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$target; \
	    seeds=; for dir in */fuzz/corpus/$$target; do test -d "$$dir" && seeds="$$seeds $$dir"; done; \
	    log=$(FUZZ_DIR)/logs/$$target.log; \
	    echo "== $$target for $(1) s (seeds:$${seeds:- none})"; \
	    if ASAN_OPTIONS=allocator_may_return_null=1 $(FUZZ_DIR)/fuzz/$$target \
	           -max_total_time=$(1) -max_len=70000 -timeout=30 -print_final_stats=1 \
	           -artifact_prefix=$(abspath $(FUZZ_DIR))/artifacts/$$target- \
	           $(FUZZ_DIR)/corpus/$$target $$seeds >$$log 2>&1; then \
	        grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units' $$log; \
	    else \
	        tail -n 60 $$log; echo "$$target FAILED: $$log, input in $(FUZZ_DIR)/artifacts/"; exit 1; \
	    fi; \
	done
endef

fuzz: fuzz-build
	$(call fuzz-run,$(FUZZ_SECONDS))

# The short run of every target that `make test` does
fuzz-smoke: fuzz-build
	$(call fuzz-run,$(FUZZ_SMOKE_SECONDS))

clean:
	rm -rf $(BUILD_DIR) $(TEST_DIR) $(FUZZ_DIR)
