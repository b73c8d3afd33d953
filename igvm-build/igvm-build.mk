# igvm-build/igvm-build.mk -- the QEMU adapter's tests and the boot benchmark.
# Included by the top-level Makefile, which defines CARGO, IGVM_BUILD, IGVM
# and the `setup` and `igvm` targets (defaults below for standalone use).
#
#   make test-adapter   adapter unit + integration tests (tiny IGVM files built
#                       in the test, booted on the installed QEMU with TCG)
#   make debug          boot paused under QEMU's gdbstub and print the gdb
#                       command (kernel symbols, breakpoint at its entry)
#   make bench-boot     median wall time from spawning QEMU to "SVSM: ready"
#                       over BENCH_BOOT_RUNS boots of the real image (reports,
#                       never asserts)
#   make upstream-qemu  find, or build once into ~/.cache/svsm-qemu, a QEMU
#                       with its own IGVM loader (igvm-cfg); `make setup` runs it
#                       and `make test-qemu` boots through it

CARGO ?= cargo
IGVM_BUILD ?= target/debug/igvm-build
IGVM ?= build/debug/svsm.igvm
BENCH_BOOT_RUNS ?= 10

.PHONY: test-adapter bench-boot upstream-qemu debug

UPSTREAM_QEMU_SCRIPT := igvm-build/scripts/build-qemu-igvm.sh
# The binary's path for the tests (only valid after `upstream-qemu`).
UPSTREAM_QEMU = $$(bash $(UPSTREAM_QEMU_SCRIPT) --find)

upstream-qemu:
	@echo "upstream-qemu: $$(bash $(UPSTREAM_QEMU_SCRIPT))"

# Not added to FRAGMENT_TESTS: `make test-host` (cargo test --workspace)
# already runs these tests.
test-adapter: setup
	$(CARGO) test -p igvm-build --lib -- rom:: qemu::
	$(CARGO) test -p igvm-build --test adapter

FRAGMENT_BENCHES += bench-boot

bench-boot: igvm
	$(IGVM_BUILD) bench-boot --runs $(BENCH_BOOT_RUNS) $(IGVM)

## debug: boot $(IGVM) stopped at the reset vector with QEMU's gdbstub on
## 127.0.0.1:$(DEBUG_PORT); prints the exact gdb command line (kernel
## symbols, hardware breakpoint at the kernel's entry) and keeps the work
## directory. CMDLINE=test=<case> boots one test case on the test image.
## See docs/debugging.md.
DEBUG_PORT ?= 1234
DEBUG_TEST := $(findstring test=,$(CMDLINE))
debug: $(if $(DEBUG_TEST),igvm-test,igvm)
	$(IGVM_BUILD) debug $(if $(DEBUG_TEST),$(TEST_IGVM) --kernel $(KERNEL_TEST_ELF),$(IGVM) --kernel $(KERNEL_ELF)) \
	  --port $(DEBUG_PORT) --work-dir $(dir $(IGVM))debug-work $(if $(CMDLINE),--cmdline "$(CMDLINE)")

## test-snp: the SNP part of the production image read back, and its launch
## digest (`igvm-build measure --platform snp`) cross-checked with
## sev-snp-measure (PyPI, its GCTX class; the wheel is fetched once into
## ~/.cache/svsm-py and checked against its SHA-256). See docs/snp.md.
SNP_MEASURE_VERSION := 0.0.13
SNP_MEASURE_SHA256 := feda1aebe69dcbf38e9c636ed1d082bb7dc741fc6969f197d39faddb72b2762d
SNP_MEASURE_WHEEL := $(HOME)/.cache/svsm-py/sev_snp_measure-$(SNP_MEASURE_VERSION)-py3-none-any.whl
.PHONY: test-snp
FRAGMENT_TESTS += test-snp

$(SNP_MEASURE_WHEEL):
	@mkdir -p $(dir $@)
	pip download --quiet --no-deps --only-binary=:all: -d $(dir $@) sev-snp-measure==$(SNP_MEASURE_VERSION)
	@echo "$(SNP_MEASURE_SHA256)  $@" | sha256sum -c --quiet || { rm -f $@; echo "sev-snp-measure wheel: checksum mismatch"; exit 1; }

test-snp: igvm $(SNP_MEASURE_WHEEL)
	SVSM_PROD_IGVM=$(abspath $(IGVM)) SVSM_SNP_MEASURE_WHEEL=$(SNP_MEASURE_WHEEL) \
	  $(CARGO) test -p igvm-build --test snp -- --include-ignored --nocapture
	$(IGVM_BUILD) measure --platform snp $(IGVM)
