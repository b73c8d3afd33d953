//! The body of the attestation request fuzz target, shared with the corpus
//! replay in `make test` (kernel/attest/tests/attest.rs).

mod body;

pub use body::run;
