//! The kernel's pure logic, apart from the binary (`main.rs`) so that it
//! builds and is tested on the host (`cargo test -p svsm-kernel --lib`,
//! run by `make test-host`): command-line parsing and the boot policies
//! decided from it and from the boot info, the CPU count and fatal-report
//! claim of the multi-CPU kernel, the exception vector table,
//! the IDT's gate layout, the hosted guest's exit decisions and page
//! states. Nothing here executes a privileged instruction
//! or touches memory it was not given.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod guest_pages;
pub mod platform_choice;
pub mod smp_policy;
pub mod vectors;
pub mod vmexit;

#[cfg(test)]
mod layering;
