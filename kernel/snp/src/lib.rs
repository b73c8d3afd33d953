//! SEV-SNP platform logic without a privileged instruction: everything here
//! reaches the hardware through [`SnpHardware`] (the GHCB MSR, VMGEXIT,
//! PVALIDATE, RMPADJUST, SEV_STATUS), which the kernel implements with
//! `arch::snp` and the tests with a recording fake (`fake`). Encodings come
//! from the GHCB specification (AMD 56421) and the SEV-SNP firmware ABI
//! (AMD 56860); their tables are cited where each is used.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod ap;
pub mod cpuid;
pub mod ghcb;
#[cfg(any(test, feature = "attest"))]
pub mod guest_request;
pub mod hw;
pub mod msr_protocol;
pub mod pvalidate;
pub mod secrets;
pub mod startup;
pub mod vc;

#[cfg(test)]
pub mod fake;

pub use hw::{PvalidateResult, RmpPageSize, SnpHardware};
