# stackcheck: static stack-depth check of the kernel and stage2.
# Included by the top-level Makefile, which provides CARGO, KERNEL_ELF,
# STAGE2_ELF, the `kernel` target and the FRAGMENT_TESTS/FRAGMENT_BENCHES lists.

STACKCHECK_BIN := target/release/stackcheck
# The test kernel: the production kernel plus the test cases, whose entries
# and annotations stackcheck.toml covers; `stackcheck` also checks the
# production kernel on its own.
STACKCHECK_ARGS := --config stackcheck.toml --image kernel=$(KERNEL_TEST_ELF) --image stage2=$(STAGE2_ELF)

.PHONY: stackcheck-bin stackcheck stackcheck-soundness test-stackcheck bench-stackcheck

stackcheck-bin:
	$(CARGO) build --release -p stackcheck --bin stackcheck

## stackcheck: check every entry point of the kernel and stage2 against its
## budget and write the reports (report.json, report.md, stack-depth.svg,
## report.sarif) to STACKCHECK_OUT (reports/, the committed copy, unless
## `make test` points it at build/). Fails (exit 1) on a violation or an
## unbounded entry.
STACKCHECK_OUT ?= reports
stackcheck: kernel kernel-test stackcheck-bin
	$(STACKCHECK_BIN) check --config stackcheck.toml --image kernel=$(KERNEL_ELF) --image stage2=$(STAGE2_ELF)
	$(STACKCHECK_BIN) report $(STACKCHECK_ARGS) --out-dir $(STACKCHECK_OUT)

## stackcheck-soundness: boot the kernel under QEMU (a plain boot, and the
## deepest in-QEMU test, backtrace-bench) and check that every measured
## STACK-HWM is within the static bound of its stack.
STACKCHECK_SOUNDNESS_BOOTS := default test=backtrace-bench
stackcheck-soundness: igvm-test stackcheck-bin
	@mkdir -p build
	@set -e; for boot in $(STACKCHECK_SOUNDNESS_BOOTS); do \
	  log=build/stackcheck-serial-$${boot#test=}.log; \
	  if [ "$$boot" = default ]; then args=""; else args="--cmdline $$boot"; fi; \
	  $(IGVM_BUILD) run $(TEST_IGVM) $$args > $$log 2>&1 || true; \
	  echo "stackcheck-soundness: boot '$$boot'"; \
	  $(STACKCHECK_BIN) hwm $(STACKCHECK_ARGS) --log $$log; \
	done

## test-stackcheck: unit/CLI/robustness tests and the validation suites
## (rustc -Z emit-stack-sizes fixture, gcc -fstack-usage fixture, hand-built
## call graphs), then the real budget check and the QEMU soundness check.
test-stackcheck:
	$(CARGO) test -p stackcheck
	$(MAKE) --no-print-directory stackcheck STACKCHECK_OUT=build/reports
	@diff -rq build/reports reports >/dev/null 2>&1 || \
	  echo "note: reports/ differs from this build's reports (build/reports): run 'make stackcheck' and commit reports/"
	$(MAKE) --no-print-directory stackcheck-release
	$(MAKE) --no-print-directory stackcheck-probes
	$(MAKE) --no-print-directory stackcheck-soundness

## bench-stackcheck: median wall time of `stackcheck check` vs `objdump -d`
## on the kernel and on /usr/bin/qemu-system-x86_64, and of the file:line
## lookups vs binutils' addr2line (not a test).
bench-stackcheck: kernel stackcheck-bin
	$(CARGO) run --release -q -p stackcheck --example bench -- \
	  $(STACKCHECK_BIN) stackcheck.toml $(KERNEL_ELF) /usr/bin/qemu-system-x86_64
	$(CARGO) run --release -q -p stackcheck --example bench_lines -- $(KERNEL_ELF)

FRAGMENT_TESTS += test-stackcheck
FRAGMENT_BENCHES += bench-stackcheck

## stackcheck-probes: every function of the kernel and stage2 allocates its
## frame a page at a time and touches each page (inline stack probes in every
## crate, core/alloc included), so no frame can jump over a guard page.
.PHONY: stackcheck-probes
stackcheck-probes: kernel kernel-test stackcheck-bin
	$(STACKCHECK_BIN) probes --elf $(KERNEL_ELF)
	$(STACKCHECK_BIN) probes --elf $(KERNEL_TEST_ELF)
	$(STACKCHECK_BIN) probes --elf $(STAGE2_ELF)

## stackcheck-release: the same entries and budgets on the release build of
## the production kernel (summary only; reports/ describes the debug build).
## The release test kernel is not checked: inlining there hides the test
## dispatcher that the [[indirect]] annotation for the test cases names.
.PHONY: stackcheck-release
stackcheck-release: stackcheck-bin
	$(MAKE) --no-print-directory RELEASE=1 kernel
	$(STACKCHECK_BIN) check --config stackcheck.toml --image kernel=build/release/svsm-kernel \
	  --image stage2=target/$(TARGET)/release/svsm-stage2
