# Parley: `make run` and `make test` do all the setup on a fresh Debian 12 machine.
#   make run     install what is missing, build, start everything on http://127.0.0.1:8080
#   make test    install what is missing, build with sanitizers, run every test
#   make build   only build (into build/)
#   make bench   the standard load suite (a few minutes) against build/; results in build/bench-results
#   make fuzz    run each libFuzzer target for FUZZ_SECONDS (clang)

BUILD_DIR   ?= build
TEST_DIR    ?= build-test
FUZZ_DIR    ?= build-fuzz
LISTEN      ?= 127.0.0.1:8080
DATA        ?= ./data
FUZZ_SECONDS ?= 60
JOBS        ?= $(shell nproc)

.PHONY: all deps system-deps npm-deps build run test unit-tests integration-tests bench fuzz clean

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
	$(MAKE) unit-tests integration-tests

unit-tests:
	ctest --test-dir $(TEST_DIR) --output-on-failure

# Everything on the embedded default, then the account, presence, rooms and
# private-message suites again on store-mongo against its wire-compatible test server
integration-tests:
	cd integration-tests && PARLEY_BUILD=$(abspath $(TEST_DIR)) node --test --test-concurrency=1 tests/
	cd integration-tests && PARLEY_BUILD=$(abspath $(TEST_DIR)) PARLEY_TEST_STORE=mongo \
	    node --test --test-concurrency=1 tests/10-auth.test.js tests/11-presence.test.js \
	    tests/20-rooms.test.js tests/23-rooms-limits.test.js tests/30-pm.test.js

bench: deps build
	BUILD_DIR=$(abspath $(BUILD_DIR)) bash integration-tests/bench/run-bench.sh

fuzz:
	CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_FUZZ=ON
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_transcode fuzz_envelope
	@for target in fuzz_transcode fuzz_envelope; do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$target; \
	    echo "== $$target for $(FUZZ_SECONDS) s"; \
	    ASAN_OPTIONS=allocator_may_return_null=1 $(FUZZ_DIR)/fuzz/$$target \
	        -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	        $(FUZZ_DIR)/corpus/$$target proto/fuzz/corpus/$$target || exit 1; \
	done

clean:
	rm -rf $(BUILD_DIR) $(TEST_DIR) $(FUZZ_DIR)
