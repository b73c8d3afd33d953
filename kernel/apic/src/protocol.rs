//! The SVSM APIC protocol (protocol 3, version 1; AMD's Alternate
//! Injection specification, as COCONUT-SVSM implements it): the five calls
//! on plain registers. The caller decodes RAX into the call number, passes
//! RCX and RDX, and writes back the outputs and the result code.

use crate::apic::{Ipi, LocalApic, RegisterError};

pub const PROTOCOL: u32 = 3;
pub const VERSION_MIN: u32 = 1;
pub const VERSION_MAX: u32 = 1;

pub const QUERY_FEATURES: u32 = 0;
pub const CONFIGURE: u32 = 1;
pub const READ_REGISTER: u32 = 2;
pub const WRITE_REGISTER: u32 = 3;
pub const CONFIGURE_VECTOR: u32 = 4;

/// CONFIGURE's RCX values.
pub const CONFIGURE_DISABLED: u64 = 0;
pub const CONFIGURE_ENABLED: u64 = 1;
pub const CONFIGURE_LOCKED: u64 = 2;

/// Who emulates the guest's APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// The host does (the calls other than QUERY_FEATURES and CONFIGURE
    /// are INVALID_REQUEST).
    Disabled,
    Enabled,
    /// Enabled, and can no longer be disabled.
    Locked,
}

/// CONFIGURE(DISABLED) while locked: protocol-specific error 0.
pub const ERR_CANNOT_DISABLE: u32 = 0;
/// CONFIGURE(LOCKED) while disabled: protocol-specific error 1.
pub const ERR_CANNOT_LOCK: u32 = 1;

/// A call's failure, named as the SVSM result codes are (the request
/// path's own error type maps one to one: `Protocol(n)` is
/// 0x8000_1000 + n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    UnsupportedCall,
    InvalidParameter,
    InvalidRequest,
    Protocol(u32),
}

impl From<RegisterError> for CallError {
    fn from(_: RegisterError) -> Self {
        CallError::InvalidParameter
    }
}

/// What a successful call hands back: RCX/RDX outputs, and an IPI (from an
/// ICR write) for the caller to route to the guest's other vCPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOutput {
    pub rcx: Option<u64>,
    pub rdx: Option<u64>,
    pub ipi: Option<Ipi>,
}

/// One vCPU's APIC as the protocol sees it.
#[derive(Clone, Debug)]
pub struct GuestApic {
    pub apic: LocalApic,
    pub emulation: Emulation,
}

impl GuestApic {
    pub fn new(apic_id: u32) -> Self {
        GuestApic {
            apic: LocalApic::new(apic_id),
            emulation: Emulation::Enabled,
        }
    }
}

/// Handles APIC protocol call `call` with inputs `rcx`, `rdx` at clock
/// `now` (for the timer registers).
pub fn handle_call(
    g: &mut GuestApic,
    call: u32,
    rcx: u64,
    rdx: u64,
    now: u64,
) -> Result<CallOutput, CallError> {
    let active = g.emulation != Emulation::Disabled;
    match call {
        // No optional features: RCX = 0.
        QUERY_FEATURES => Ok(CallOutput {
            rcx: Some(0),
            ..CallOutput::default()
        }),
        CONFIGURE => configure(g, rcx).map(|()| CallOutput::default()),
        READ_REGISTER | WRITE_REGISTER | CONFIGURE_VECTOR if !active => {
            Err(CallError::InvalidRequest)
        }
        READ_REGISTER => {
            let reg = register_number(rcx)?;
            Ok(CallOutput {
                rdx: Some(g.apic.read(reg, now)?),
                ..CallOutput::default()
            })
        }
        WRITE_REGISTER => {
            let reg = register_number(rcx)?;
            Ok(CallOutput {
                ipi: g.apic.write(reg, rdx, now)?,
                ..CallOutput::default()
            })
        }
        CONFIGURE_VECTOR => {
            // RCX[7:0] vector, RCX[8] allowed; anything above is reserved.
            if rcx > 0x1FF {
                return Err(CallError::InvalidParameter);
            }
            g.apic.configure_vector(rcx as u8, rcx & 0x100 != 0)?;
            Ok(CallOutput::default())
        }
        _ => Err(CallError::UnsupportedCall),
    }
}

fn register_number(rcx: u64) -> Result<u32, CallError> {
    u32::try_from(rcx).map_err(|_| CallError::InvalidParameter)
}

fn configure(g: &mut GuestApic, rcx: u64) -> Result<(), CallError> {
    g.emulation = match (rcx, g.emulation) {
        (CONFIGURE_DISABLED, Emulation::Locked) => {
            return Err(CallError::Protocol(ERR_CANNOT_DISABLE));
        }
        (CONFIGURE_DISABLED, _) => Emulation::Disabled,
        (CONFIGURE_ENABLED, Emulation::Locked) => Emulation::Locked,
        (CONFIGURE_ENABLED, _) => Emulation::Enabled,
        (CONFIGURE_LOCKED, Emulation::Disabled) => {
            return Err(CallError::Protocol(ERR_CANNOT_LOCK));
        }
        (CONFIGURE_LOCKED, _) => Emulation::Locked,
        _ => return Err(CallError::InvalidParameter),
    };
    Ok(())
}
