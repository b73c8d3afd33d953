//! igvm-build: host-side packaging of the SVSM into an IGVM file, and an
//! adapter that runs IGVM files on QEMU builds without IGVM support.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod build;
pub mod channel;
pub mod configpage;
pub mod debug;
pub mod elf;
pub mod idblock;
pub mod igvm_check;
pub mod measure;
pub mod paging;
pub mod qemu;
pub mod rom;
pub mod snp;
pub mod unwind;
