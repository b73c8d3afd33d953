# Make fragment for the instruction decoder and emulator (svsm-insn).
# Included by the top-level Makefile. Its host tests (the iced-x86
# differential test, the emulator, fetch bounds, the fuzz-corpus replay)
# run in `make test-host` with the rest of the workspace.
CARGO ?= cargo

.PHONY: bench-insn

# ns per decode and per decode + emulate of trapping instructions, next to
# iced-x86's decode of the same bytes (medians, no asserts).
bench-insn:
	$(CARGO) bench -p svsm-insn --bench io

FRAGMENT_BENCHES += bench-insn
