//! The body of the decoder's fuzz target, shared by the libFuzzer binary
//! (fuzz_targets/, `make fuzz`) and the corpus replay that runs in
//! `make test` on stable (kernel/insn/tests/fuzz_corpus.rs). The oracle
//! and the fake machine are the host tests' own.

#[path = "../../tests/common/mod.rs"]
pub mod common;
#[path = "../../tests/machine/mod.rs"]
pub mod machine;
mod target;

pub use target::decode;
