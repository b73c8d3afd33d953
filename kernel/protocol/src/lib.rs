//! The SVSM protocol's request path as pure logic, shared by every platform.
//!
//! A guest calls with RAX = (protocol << 32) | call and arguments in RCX,
//! RDX, R8, R9 after setting `call_pending` in its Calling Area. The kernel
//! runs the guest until it calls, then hands the registers to [`serve`],
//! which reads the Calling Area once (a copy), dispatches through the
//! [`Registry`] and returns the output registers for the kernel to write
//! back. Guest memory is reached only through [`GuestMemory`], which
//! copies; what the platform does (validate pages, run vCPUs) is behind
//! [`CoreBackend`].
//!
//! Nothing here executes a privileged instruction or touches memory by
//! address, so everything is host-tested, fuzzed (kernel/protocol/fuzz) and
//! checked by the [`conformance`] suite.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod backend;
pub mod conformance;
pub mod core_protocol;
pub mod error;
pub mod memory;
pub mod model;
pub mod registry;
pub mod regs;
pub mod serve;

pub use backend::{CoreBackend, GpaRange, PvalidateDone, VcpuId};
pub use core_protocol::CoreProtocol;
pub use error::CallError;
pub use memory::{GuestMemory, MemError};
pub use registry::{Protocol, Registry, Request, VersionRange};
pub use regs::{CallRegs, OutRegs};
pub use serve::{CallContext, Outcome, serve};
