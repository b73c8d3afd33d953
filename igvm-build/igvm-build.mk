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
