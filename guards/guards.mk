# guards/guards.mk -- host tests for the guarded-stack logic (svsm-guards)
# and the kernel's frame allocator / heap (svsm-mm).
# Include from the top-level Makefile:  include guards/guards.mk
# and add test-guards to the prerequisites of `test` (and clippy-guards /
# fmt-guards to `clippy` / `fmt` if wanted).

GUARDS_CARGO ?= cargo
GUARDS_PKGS  := -p svsm-guards -p svsm-mm

.PHONY: test-guards clippy-guards fmt-guards

test-guards: clippy-guards
	$(GUARDS_CARGO) test $(GUARDS_PKGS)
	$(GUARDS_CARGO) fmt $(GUARDS_PKGS) --check
	# Both crates must also build no_std for the kernel target.
	$(GUARDS_CARGO) build $(GUARDS_PKGS) --target x86_64-unknown-none

clippy-guards:
	$(GUARDS_CARGO) clippy $(GUARDS_PKGS) --all-targets -- -D warnings

fmt-guards:
	$(GUARDS_CARGO) fmt $(GUARDS_PKGS)

.PHONY: bench-guards
# Prints medians; asserts nothing.
bench-guards:
	$(GUARDS_CARGO) run --release -p svsm-guards --example bench_guards
	$(GUARDS_CARGO) run --release -p svsm-mm --example bench_mm
