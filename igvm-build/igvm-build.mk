# igvm-build/igvm-build.mk -- the QEMU adapter's tests and the boot benchmark.
# Included by the top-level Makefile, which defines CARGO, IGVM_BUILD, IGVM
# and the `setup` and `igvm` targets (defaults below for standalone use).
#
#   make test-adapter   adapter unit + integration tests (tiny IGVM files built
#                       in the test, booted on the installed QEMU with TCG)
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

.PHONY: test-adapter bench-boot upstream-qemu

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
