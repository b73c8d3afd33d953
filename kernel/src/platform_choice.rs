//! Which platform implementation runs, decided from the boot info's
//! platform value (the IGVM platform igvm-build packaged for). A platform
//! this kernel does not implement is refused, never run as another one.

use core::fmt;
use svsm_bootdefs::PlatformKind;

/// The platform implementations this kernel has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    Native,
    Snp,
}

/// Why the kernel will not run on the platform the boot info names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformRefused {
    /// A value that names no platform at all.
    Unknown(u32),
    /// A known platform without an implementation in this kernel yet.
    NotImplemented(PlatformKind),
}

impl fmt::Display for PlatformRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(v) => write!(f, "boot info names unknown platform {v}"),
            Self::NotImplemented(k) => write!(
                f,
                "platform {} is not implemented in this kernel (refusing to run it as native)",
                k.name()
            ),
        }
    }
}

/// The implementation for the boot info's `platform` value.
pub fn choose(platform: u32) -> Result<Implementation, PlatformRefused> {
    match PlatformKind::from_u32(platform) {
        Some(PlatformKind::Native) => Ok(Implementation::Native),
        Some(PlatformKind::Snp) => Ok(Implementation::Snp),
        Some(k @ PlatformKind::Tdx) => Err(PlatformRefused::NotImplemented(k)),
        None => Err(PlatformRefused::Unknown(platform)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_snp_run_and_the_rest_is_named() {
        assert_eq!(
            choose(PlatformKind::Native as u32),
            Ok(Implementation::Native)
        );
        assert_eq!(choose(PlatformKind::Snp as u32), Ok(Implementation::Snp));
        let tdx = choose(PlatformKind::Tdx as u32).unwrap_err();
        assert_eq!(tdx, PlatformRefused::NotImplemented(PlatformKind::Tdx));
        assert!(tdx.to_string().contains("platform tdx is not implemented"));
        assert_eq!(choose(9), Err(PlatformRefused::Unknown(9)));
        assert_eq!(
            choose(9).unwrap_err().to_string(),
            "boot info names unknown platform 9"
        );
    }
}
