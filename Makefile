# Convenience front end over Meson. The two commands the README promises:
#   make run     install dependencies, build, start dpf-server on embedded
#                defaults (SQLite store, HTTPS, admin kubeconfig written)
#   make check   install dependencies, build (plus an ASan+UBSan build),
#                lint, run unit tests, fuzz corpus replay and system tests
BUILD ?= build
ASAN ?= build-asan
MESON_RELEASE = -Dbuildtype=release -Db_ndebug=true
MESON_ASAN = -Dbuildtype=debug -Db_sanitize=address,undefined \
             -Db_lundef=false
JOBS ?= 2

.PHONY: all deps build asan run check unit fuzz-replay system lint clean bench

all: build

deps:
	scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_RELEASE)

$(ASAN)/build.ninja:
	meson setup $(ASAN) $(MESON_ASAN)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD) -j$(JOBS)

asan: $(ASAN)/build.ninja
	ninja -C $(ASAN) -j$(JOBS)

run: deps build
	scripts/run-control-plane

unit: asan
	meson test -C $(ASAN) --suite unit --print-errorlogs

fuzz-replay: asan
	meson test -C $(ASAN) --suite fuzz --print-errorlogs

system: asan build
	DPF_BUILD=$(CURDIR)/$(ASAN) DPF_BUILD_RELEASE=$(CURDIR)/$(BUILD) \
	    /usr/bin/python3 -m pytest -q -rs tests/system

# scripts/test runs scripts/install-deps first (no network when nothing is
# missing), so a fresh clone needs only this target.
check:
	scripts/test

lint:
	scripts/lint

bench: build
	@echo "see docs/benchmarks.md for the benchmark programs"

clean:
	rm -rf $(BUILD) $(ASAN)
