# Thin wrapper around CMake. The README's two commands are `make test` and
# `make run`; everything else is for developers.
BUILD  ?= build
CC     := clang
JOBS   ?= 2
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 300

.PHONY: all deps build install test fuzz bench bench-datapath bench-tap bench-admission bench-failover bench-streams bench-threads run clean

all: build

deps:
	@bash scripts/bootstrap.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=$(CC) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The programs, HAProxy files, Lua shim, man pages, systemd units and an
# example /etc/realms/realms.json (kept if present), under PREFIX, staged
# under DESTDIR when set (cmake/install.cmake; the Debian package uses the
# same rules).
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Unit, integration (plain and ASan+UBSan) and fuzz smoke tests, one ctest
# run, ending with ctest's summary line.
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600

# Longer fuzzing: each target for FUZZ_SECONDS.
fuzz: build
	@for f in $(BUILD)/fuzz_*; do bash tests/fuzz/run.sh $$f $(FUZZ_SECONDS) || exit 1; done

# The agent alone and behind HAProxy (run.sh), the whole data path against
# a plain proxy (datapath.sh), the cost of the response mirror (tap.sh).
bench: build
	bash bench/run.sh
	bash bench/datapath.sh
	bash bench/tap.sh

bench-datapath: build
	bash bench/datapath.sh

bench-tap: build
	bash bench/tap.sh

bench-admission: build
	bash bench/admission.sh

bench-failover: build
	bash bench/failover.sh

# One agent worker thread against two, side by side (bench/README.md).
bench-threads: build
	bash bench/threads.sh

# Memory per concurrent stream: STREAMS_N streams held open (bench/README.md).
bench-streams: build
	bash bench/streams.sh

# A local gateway in the foreground (see scripts/run.sh for its variables).
run: build
	@bash scripts/run.sh

clean:
	rm -rf $(BUILD)
