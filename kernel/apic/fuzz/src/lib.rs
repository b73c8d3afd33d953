//! The body of the APIC register-interface fuzz target: the operation
//! interpreter of the host tests (kernel/apic/tests/common), which checks
//! the model's invariants after every operation. `make test` replays the
//! committed corpus through it (kernel/apic/tests/fuzz_corpus.rs).

#[path = "../../tests/common/mod.rs"]
mod common;

pub use common::run_ops;
