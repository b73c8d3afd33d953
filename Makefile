# SVSM: build, run and test. See README.md.
#
#   make            build stage2, the kernel and the IGVM file
#   make run        boot it under QEMU (serial console on stdout)
#   make test       host tests, validation suites, stack check, in-QEMU tests
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

KERNEL_ELF := target/$(TARGET)/$(PROFILE_DIR)/svsm-kernel
STAGE2_ELF := target/$(TARGET)/$(PROFILE_DIR)/svsm-stage2
IGVM_BUILD := target/debug/igvm-build
IGVM := build/$(PROFILE_DIR)/svsm.igvm
export KERNEL_ELF STAGE2_ELF IGVM

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: check-nostd all setup kernel host-tools igvm run test test-host test-qemu stage2-size \
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
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@echo "setup: toolchain $(PINNED), target $(TARGET), $$(qemu-system-x86_64 --version | head -1)"
	@$(MAKE) --no-print-directory upstream-qemu

kernel:
	$(TARGET_CARGO) build $(PROFILE_FLAG) -p svsm-kernel -p svsm-stage2 --target $(TARGET) $(BUILD_STD)

host-tools:
	$(CARGO) build -p igvm-build

igvm: kernel host-tools
	@mkdir -p $(dir $(IGVM))
	$(IGVM_BUILD) build --stage2 $(STAGE2_ELF) --kernel $(KERNEL_ELF) -o $(IGVM)

## run: boot under QEMU; exits 0 when the kernel shuts down with success.
run: setup igvm
	$(IGVM_BUILD) run $(IGVM) $(if $(CMDLINE),--cmdline "$(CMDLINE)")

stage2-size: igvm
	$(IGVM_BUILD) info --stage2 $(STAGE2_ELF) --kernel $(KERNEL_ELF) --check

test-host:
	$(CARGO) test --workspace --exclude svsm-kernel --exclude svsm-stage2

## In-QEMU tests: one boot per scenario (igvm-build/tests/boot.rs), and boots
## through upstream QEMU's own IGVM loader (igvm-build/tests/upstream.rs).
test-qemu: igvm stackcheck-bin upstream-qemu
	SVSM_IGVM=$(abspath $(IGVM)) SVSM_KERNEL_ELF=$(abspath $(KERNEL_ELF)) STACKCHECK_BIN=$(abspath $(STACKCHECK_BIN)) \
	  SVSM_UPSTREAM_QEMU=$(UPSTREAM_QEMU) \
	  $(CARGO) test -p igvm-build --test boot --test upstream -- --include-ignored --test-threads=2

check-stable:
	@if grep -rn --include='*.rs' -E '^\s*#!\[feature' kernel stage2 guards unwinder stackcheck igvm-build; then \
	  echo "check-stable: unstable features are not allowed"; exit 1; fi
	$(CARGO) check --workspace --exclude svsm-kernel --exclude svsm-stage2 --quiet
	@echo "check-stable: no unstable features"

clippy:
	$(CARGO) clippy --workspace --exclude svsm-kernel --exclude svsm-stage2 --all-targets -- -D warnings
	$(TARGET_CARGO) clippy $(PROFILE_FLAG) -p svsm-kernel -p svsm-stage2 --target $(TARGET) $(BUILD_STD) -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

# Subsystem fragments add test-<area> and bench-<area> targets.
FRAGMENT_TESTS :=
FRAGMENT_BENCHES :=
-include guards/guards.mk unwinder/unwinder.mk stackcheck/stackcheck.mk igvm-build/igvm-build.mk


## The library crates must also build no_std for the kernel target.
check-nostd:
	$(CARGO) build -q -p svsm-guards -p svsm-mm -p svsm-unwinder -p svsm-bootdefs --target $(TARGET)

test: setup
	$(MAKE) --no-print-directory fmt-check check-stable clippy
	$(MAKE) --no-print-directory igvm stage2-size check-nostd
	$(MAKE) --no-print-directory test-host
	$(MAKE) --no-print-directory cfi-coverage
	$(MAKE) --no-print-directory test-qemu
	$(MAKE) --no-print-directory RELEASE=1 test-qemu
	$(if $(FRAGMENT_TESTS),$(MAKE) --no-print-directory $(FRAGMENT_TESTS))
	@echo "make test: all passed"

FRAGMENT_BENCHES += bench-unwinder bench-guards

## bench: every benchmark; each prints medians and never asserts.
bench: $(FRAGMENT_BENCHES)

clean:
	cargo clean
	rm -rf build
