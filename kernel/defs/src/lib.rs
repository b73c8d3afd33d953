//! Hardware definitions, one of each: x86-64 descriptors, control-register,
//! EFER and page-table bits, MSR numbers, and the AMD SVM / SEV-SNP pages
//! (VMSA, GHCB, secrets page, CPUID page), and the SVSM protocol's formats.
//!
//! Plain data and pure functions only: no instruction is executed here, so
//! every definition is host-tested (layouts against the offsets the AMD APM
//! vol. 2, the GHCB specification 56421 and the SNP firmware ABI 56860 give).
//! The kernel, stage2 and igvm-build all take their definitions from here.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod addr;
pub mod apic;
pub mod cpuid;
pub mod cr;
pub mod desc;
pub mod ghcb;
pub mod ioio;
pub mod msr;
pub mod paging;
pub mod secrets;
pub mod snp_msg;
pub mod snp_report;
pub mod svsm;
pub mod uart;
pub mod vmcb;
pub mod vmsa;

pub use addr::{PhysAddr, VirtAddr};

/// Size of a 4 KiB page, the unit of every page-sized structure here.
pub const PAGE_SIZE: u64 = 4096;
