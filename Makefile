# SVSM: build, run and test. See README.md.
#
#   make            build stage2, the kernel and the IGVM file (production image)
#   make run        boot it under QEMU (serial console on stdout);
#                   CMDLINE=test=<case> boots the test image instead;
#                   SMP=<n> boots n CPUs (docs/smp.md)
#   make test       host tests, validation suites, stack check, in-QEMU tests
#                   (builds the test image: the kernel with its test cases)
#   RELEASE=1       release build
#
# Toolchain: one pinned stable (rust-toolchain.toml) serves every
# configuration. Override per configuration with SVSM_TARGET_TOOLCHAIN (kernel,
# stage2) and SVSM_HOST_TOOLCHAIN (host tools and tests).

SHELL := /bin/bash
.DEFAULT_GOAL := all

PINNED := $(shell sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
SVSM_TARGET_TOOLCHAIN ?= $(PINNED)
SVSM_HOST_TOOLCHAIN ?= $(PINNED)
TARGET := x86_64-unknown-none

# Host tools and tests.
CARGO := RUSTUP_TOOLCHAIN=$(SVSM_HOST_TOOLCHAIN) cargo
# Target build. -Zbuild-std rebuilds core/alloc/compiler_builtins from rust-src
# with our target flags (.cargo/config.toml), so they carry unwind tables (CFI)
# for the in-kernel unwinder and for stackcheck. It is the one -Z flag we need;
# RUSTC_BOOTSTRAP=1 allows it on the pinned stable. Our own crates use no
# unstable features: `make check-stable` enforces that.
TARGET_CARGO := RUSTUP_TOOLCHAIN=$(SVSM_TARGET_TOOLCHAIN) RUSTC_BOOTSTRAP=1 cargo
BUILD_STD := -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem

ifeq ($(RELEASE),1)
PROFILE_FLAG := --release
PROFILE_DIR := release
else
PROFILE_FLAG :=
PROFILE_DIR := debug
endif

# Cargo writes the production and the test kernel to the same path; each
# build is copied out to its own name under build/.
KERNEL_CARGO_ELF := target/$(TARGET)/$(PROFILE_DIR)/svsm-kernel
# The production kernel, and the test kernel (cargo feature `testcases`: the
# in-kernel test cases and their fault hook; the production kernel refuses
# `test=` on its command line).
KERNEL_ELF := build/$(PROFILE_DIR)/svsm-kernel
KERNEL_TEST_ELF := build/$(PROFILE_DIR)/svsm-kernel-test
STAGE2_ELF := target/$(TARGET)/$(PROFILE_DIR)/svsm-stage2
IGVM_BUILD := target/debug/igvm-build
IGVM := build/$(PROFILE_DIR)/svsm.igvm
TEST_IGVM := build/$(PROFILE_DIR)/svsm-test.igvm
# The test guest the test image carries (hosted with AMD-V: docs/guest-host.md).
TESTGUEST_ELF := build/$(PROFILE_DIR)/svsm-testguest
export KERNEL_ELF KERNEL_TEST_ELF STAGE2_ELF IGVM TEST_IGVM TESTGUEST_ELF
# Host-side cargo commands skip the target-only crates.
HOST_EXCLUDE := --exclude svsm-kernel --exclude svsm-stage2 --exclude svsm-testguest

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: check-nostd all setup kernel kernel-test testguest host-tools igvm igvm-test run test test-host test-qemu stage2-size \
        clippy fmt fmt-check check-stable bench clean

all: igvm

## setup: idempotent prerequisites (rustup target/components, QEMU, binutils,
## and a QEMU with its own IGVM loader: upstream-qemu in igvm-build/igvm-build.mk).
setup:
	@rustup toolchain list | grep -q "^$(PINNED)" || rustup toolchain install $(PINNED) --profile minimal
	@rustup target list --toolchain $(PINNED) --installed | grep -qx $(TARGET) || rustup target add --toolchain $(PINNED) $(TARGET)
	@for c in rust-src clippy rustfmt; do \
	  rustup component list --toolchain $(PINNED) --installed | grep -q "^$$c" || rustup component add --toolchain $(PINNED) $$c; \
	done
	@missing=""; \
	command -v qemu-system-x86_64 >/dev/null || missing="$$missing qemu-system-x86"; \
	command -v objdump >/dev/null || missing="$$missing binutils"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	command -v gdb >/dev/null || missing="$$missing gdb"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v rsvg-convert >/dev/null || missing="$$missing librsvg2-bin"; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@echo "setup: toolchain $(PINNED), target $(TARGET), $$(qemu-system-x86_64 --version | head -1)"
	@$(MAKE) --no-print-directory upstream-qemu

# stage2 builds on its own: built together with the kernel, it would get
# the kernel's dependency features (zerocopy's `alloc`), and with them a
# heap it does not have.
kernel:
	$(TARGET_CARGO) build $(PROFILE_FLAG) -p svsm-kernel --target $(TARGET) $(BUILD_STD)
	$(TARGET_CARGO) build $(PROFILE_FLAG) -p svsm-stage2 --target $(TARGET) $(BUILD_STD)
	@mkdir -p $(dir $(KERNEL_ELF))
	cp $(KERNEL_CARGO_ELF) $(KERNEL_ELF)

kernel-test:
	$(TARGET_CARGO) build $(PROFILE_FLAG) -p svsm-kernel --features testcases --target $(TARGET) $(BUILD_STD)
	@mkdir -p $(dir $(KERNEL_TEST_ELF))
	cp $(KERNEL_CARGO_ELF) $(KERNEL_TEST_ELF)

## testguest: the small guest the test image hosts (docs/guest-host.md).
testguest:
	$(TARGET_CARGO) build $(PROFILE_FLAG) -p svsm-testguest --target $(TARGET) $(BUILD_STD)
	@mkdir -p $(dir $(TESTGUEST_ELF))
	cp target/$(TARGET)/$(PROFILE_DIR)/svsm-testguest $(TESTGUEST_ELF)

host-tools:
	$(CARGO) build -p igvm-build

igvm: kernel host-tools
	@mkdir -p $(dir $(IGVM))
	$(IGVM_BUILD) build --stage2 $(STAGE2_ELF) --kernel $(KERNEL_ELF) -o $(IGVM)

## igvm-test: the test image (the kernel built with its test cases, and
## the test guest it hosts; PVALIDATE served 64 entries per call, so the
## guest's INCOMPLETE retries run too).
igvm-test: kernel kernel-test testguest host-tools
	@mkdir -p $(dir $(TEST_IGVM))
	$(IGVM_BUILD) build --stage2 $(STAGE2_ELF) --kernel $(KERNEL_TEST_ELF) --guest $(TESTGUEST_ELF) \
	  --pvalidate-budget 64 -o $(TEST_IGVM)

## run: boot under QEMU; exits 0 when the kernel shuts down with success.
## A `test=<case>` or `guest=<scenario>` in CMDLINE boots the test image
## (the one with the in-kernel test cases and the hosted test guest).
RUN_TEST := $(findstring test=,$(CMDLINE))$(findstring guest=,$(CMDLINE))
run: setup igvm $(if $(RUN_TEST),igvm-test)
	$(IGVM_BUILD) run $(if $(RUN_TEST),$(TEST_IGVM),$(IGVM)) $(if $(CMDLINE),--cmdline "$(CMDLINE)") $(if $(SMP),--smp $(SMP))

stage2-size: igvm
	$(IGVM_BUILD) info --stage2 $(STAGE2_ELF) --kernel $(KERNEL_ELF) --check

## test-host: every host crate, and the kernel's pure logic (its lib target).
test-host:
	$(CARGO) test --workspace $(HOST_EXCLUDE)
	$(CARGO) test -p svsm-kernel --lib

## In-QEMU tests: one boot per scenario (igvm-build/tests/boot.rs), on the
## test image; the production image for the normal boot and its refusals.
## Boots through upstream QEMU's own IGVM loader: igvm-build/tests/upstream.rs.
test-qemu: igvm igvm-test stackcheck-bin upstream-qemu
	SVSM_IGVM=$(abspath $(TEST_IGVM)) SVSM_PROD_IGVM=$(abspath $(IGVM)) \
	  SVSM_KERNEL_ELF=$(abspath $(KERNEL_TEST_ELF)) STACKCHECK_BIN=$(abspath $(STACKCHECK_BIN)) \
	  SVSM_UPSTREAM_QEMU=$(UPSTREAM_QEMU) \
	  $(CARGO) test -p igvm-build --test boot --test guest --test smp --test upstream --test debug -- --include-ignored --test-threads=2

check-stable:
	@if grep -rn --include='*.rs' -E '^\s*#!\[feature' kernel stage2 guards unwinder stackcheck igvm-build; then \
	  echo "check-stable: unstable features are not allowed"; exit 1; fi
	$(CARGO) check --workspace $(HOST_EXCLUDE) --quiet
	@echo "check-stable: no unstable features"

clippy:
	$(CARGO) clippy --workspace $(HOST_EXCLUDE) --all-targets -- -D warnings
	$(CARGO) clippy -p svsm-kernel --lib --tests -- -D warnings
	$(TARGET_CARGO) clippy $(PROFILE_FLAG) -p svsm-kernel -p svsm-testguest --target $(TARGET) $(BUILD_STD) -- -D warnings
	$(TARGET_CARGO) clippy $(PROFILE_FLAG) -p svsm-stage2 --target $(TARGET) $(BUILD_STD) -- -D warnings
	$(TARGET_CARGO) clippy $(PROFILE_FLAG) -p svsm-kernel --features testcases --target $(TARGET) $(BUILD_STD) -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

# Subsystem fragments add test-<area> and bench-<area> targets.
FRAGMENT_TESTS :=
FRAGMENT_BENCHES :=
-include guards/guards.mk unwinder/unwinder.mk stackcheck/stackcheck.mk igvm-build/igvm-build.mk \
         kernel/insn/insn.mk


## The library crates must also build no_std for the kernel target.
check-nostd:
	$(CARGO) build -q -p svsm-guards -p svsm-mm -p svsm-unwinder -p svsm-bootdefs -p svsm-defs -p svsm-snp -p svsm-protocol \
	  -p svsm-insn -p svsm-apic -p svsm-attest --target $(TARGET)

test: setup
	$(MAKE) --no-print-directory fmt-check check-stable clippy
	$(MAKE) --no-print-directory igvm igvm-test stage2-size check-nostd
	$(MAKE) --no-print-directory test-host
	$(MAKE) --no-print-directory cfi-coverage
	$(MAKE) --no-print-directory test-qemu
	$(MAKE) --no-print-directory RELEASE=1 test-qemu
	$(if $(FRAGMENT_TESTS),$(MAKE) --no-print-directory $(FRAGMENT_TESTS))
	@echo "make test: all passed"

FRAGMENT_BENCHES += bench-unwinder bench-guards bench-guest

## bench-guest: the hosted guest's round trips in guest TSC cycles (median
## QUERY_PROTOCOL through the GHCB MSR protocol next to a bare VMMCALL the
## SVSM answers at once) and PVALIDATE throughput for a full list in the CA.
.PHONY: bench-guest
bench-guest: igvm-test
	@$(IGVM_BUILD) run $(TEST_IGVM) --cmdline guest=bench --timeout 300 | grep -E '^guest: BENCH|^GUEST-'

## bench: every benchmark; each prints medians and never asserts.
bench: $(FRAGMENT_BENCHES)

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each, printing the
## executions per target (installs cargo-fuzz if missing; -Z flags through
## RUSTC_BOOTSTRAP=1 on the pinned stable). New inputs go to build/fuzz/,
## the committed corpus (<crate>/fuzz/corpus/<target>) is only read; crashes
## land in <crate>/fuzz/artifacts/. `make test` replays the committed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := unwinder:unwind unwinder:api igvm-build:igvm igvm-build:elf \
                stackcheck:config stackcheck:log stackcheck:elf \
                kernel/protocol:request kernel/protocol:pvalidate kernel/protocol:vcpu \
                kernel/insn:decode kernel/apic:registers kernel/attest:request
FUZZ_CARGO := RUSTUP_TOOLCHAIN=$(PINNED) RUSTC_BOOTSTRAP=1 cargo
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(FUZZ_CARGO) install cargo-fuzz --locked
	@mkdir -p build/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  crate=$${t%%:*}; name=$${t#*:}; work=$(abspath build/fuzz)/$$crate-$$name; mkdir -p $$work; \
	  log=$(abspath build/fuzz)/$$crate-$$name.log; \
	  ( cd $$crate/fuzz && $(FUZZ_CARGO) fuzz run -a -s none --target-dir $(abspath target/fuzz) $$name \
	      $$work corpus/$$name -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 ) > $$log 2>&1 \
	    || { tail -40 $$log; echo "fuzz $$crate/$$name: FAILED (log $$log)"; exit 1; }; \
	  echo "fuzz $$crate/$$name: $$(sed -n 's/^stat::number_of_executed_units: *//p' $$log) executions in $(FUZZ_SECONDS) s"; \
	done

clean:
	cargo clean
	rm -rf build
