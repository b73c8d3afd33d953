# Make fragment for the unwinder. Included by the top-level
# Makefile; uses $(CARGO) if set, else cargo.
CARGO ?= cargo
# ELF for cfi-coverage (the kernel ELF by default, if the Makefile sets it).
UNWINDER_COVERAGE_ELF ?= $(KERNEL_ELF)

.PHONY: test-unwinder bench-unwinder cfi-coverage check-unwinder-fuzz unwinder-table-release

# Host tests: unwinding the test binary's own stack against libgcc,
# hand-made CFI (exception entry frames), robustness (random stacks,
# mutated CFI), the backtrace formatter, coverage, and the symbol table.
test-unwinder:
	$(CARGO) test -p svsm-unwinder
	$(CARGO) test -p svsm-bootdefs --features alloc symtab

# ns per frame, ours vs libgcc's _Unwind_Backtrace, medians (no asserts).
bench-unwinder:
	$(CARGO) bench -p svsm-unwinder --bench unwind

# Fraction of .text covered by FDEs; fails (exit 1) unless it is 100%.
cfi-coverage:
	@test -n "$(UNWINDER_COVERAGE_ELF)" || { echo "set UNWINDER_COVERAGE_ELF=<elf>"; exit 2; }
	$(CARGO) run -q -p svsm-unwinder --example coverage -- --require-full $(UNWINDER_COVERAGE_ELF)

# The cargo-fuzz target only type-checks on stable; running it needs
# cargo-fuzz and RUSTC_BOOTSTRAP=1 (see unwinder/fuzz/Cargo.toml).
check-unwinder-fuzz:
	cd unwinder/fuzz && $(CARGO) check

# The compact unwind tables of the release kernels against gimli at every
# instruction (the debug kernels' run in the host tests via KERNEL_ELF and
# KERNEL_TEST_ELF).
unwinder-table-release:
	$(MAKE) --no-print-directory RELEASE=1 kernel kernel-test
	KERNEL_ELF=build/release/svsm-kernel KERNEL_TEST_ELF=build/release/svsm-kernel-test \
	  $(CARGO) test -p svsm-unwinder --test tables kernel_table

FRAGMENT_TESTS += unwinder-table-release
