//! The SVSM result codes as an error type.

use crate::memory::MemError;
use svsm_defs::svsm::result;

/// A call's failure: the result code the guest receives in RAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    Incomplete,
    UnsupportedProtocol,
    UnsupportedCall,
    InvalidAddress,
    InvalidFormat,
    InvalidParameter,
    InvalidRequest,
    Busy,
    /// A protocol-specific failure: 0x8000_1000 + n.
    Protocol(u32),
}

impl CallError {
    /// A PVALIDATE failure with the instruction's return code `rc`.
    pub const fn pvalidate(rc: u32) -> Self {
        Self::Protocol(rc)
    }

    /// The result code for RAX.
    pub const fn code(self) -> u64 {
        match self {
            Self::Incomplete => result::INCOMPLETE,
            Self::UnsupportedProtocol => result::UNSUPPORTED_PROTOCOL,
            Self::UnsupportedCall => result::UNSUPPORTED_CALL,
            Self::InvalidAddress => result::INVALID_ADDRESS,
            Self::InvalidFormat => result::INVALID_FORMAT,
            Self::InvalidParameter => result::INVALID_PARAMETER,
            Self::InvalidRequest => result::INVALID_REQUEST,
            Self::Busy => result::BUSY,
            Self::Protocol(n) => result::PROTOCOL_BASE + n as u64,
        }
    }
}

/// An address the guest named that is not guest RAM.
impl From<MemError> for CallError {
    fn from(_: MemError) -> Self {
        Self::InvalidAddress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(CallError::Busy.code(), 0x8000_0007);
        assert_eq!(CallError::pvalidate(6).code(), 0x8000_1006);
        assert_eq!(CallError::UnsupportedCall.code(), 0x8000_0002);
    }
}
