# capforge developer entry points. Everything installs what it needs first (scripts/bootstrap).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-all demo bench format clean pg

all: build

deps:
	@scripts/bootstrap

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# A throwaway PostgreSQL on loopback for the `pg` tests and for trying `--db postgresql://...`.
pg: deps
	@scripts/pg start

# The CI suite: every label except `slow`. The `pg` tests run against scripts/pg's server.
PG_ENV = url=$$(scripts/pg start) || { echo "cannot start PostgreSQL (scripts/pg start)" >&2; exit 1; }; \
	export CAPFORGE_TEST_PG_URL=$$url CAPFORGE_TEST_PG_RESTART="$(CURDIR)/scripts/pg restart";
test: build
	@$(PG_ENV) ctest --test-dir $(BUILD) -LE slow -j $(JOBS) --output-on-failure

test-all: build
	@$(PG_ENV) ctest --test-dir $(BUILD) -j $(JOBS) --output-on-failure

# The main job on the bundled sample.
demo: build
	@scripts/demo $(BUILD)

bench:
	@scripts/bootstrap --bench
	@$(MAKE) --no-print-directory build
	bench/run $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
