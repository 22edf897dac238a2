# Myelin: thin wrapper over meson. `make run` and `make test` install any
# missing Debian packages first (scripts/install-deps.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
DATA       ?= $(CURDIR)/data
PYTHON     ?= /usr/bin/python3

.PHONY: all deps build run test unit bench fuzz format clean

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) --buildtype=debugoptimized
	ninja -C $(BUILD)

run: build
	@test -f $(DATA)/myelin.yaml || $(BUILD)/myelin init --server-name localhost:8008 --data-dir $(DATA)
	exec $(BUILD)/myelin serve --config $(DATA)/myelin.yaml

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false -Dwerror=true

test: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	MYELIN_BIN=$(ASAN_BUILD)/myelin $(PYTHON) tests/run_all.py --pg \
		--unit $(ASAN_BUILD)/tests/unit/unit-tests

unit: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	$(ASAN_BUILD)/tests/unit/unit-tests

bench: build
	$(PYTHON) bench/run.py --build $(BUILD)

fuzz: deps
	@test -f $(FUZZ_BUILD)/build.ninja || CC=clang meson setup $(FUZZ_BUILD) --buildtype=debugoptimized \
		-Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(FUZZ_BUILD)
	@for t in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
		name=$$(basename $$t); mkdir -p $(FUZZ_BUILD)/corpus/$$name; \
		echo "== $$name ($(FUZZ_SECONDS)s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(FUZZ_BUILD)/corpus/$$name tests/fuzz/seeds/$$name || exit 1; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
