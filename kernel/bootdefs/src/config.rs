//! The SVSM configuration page (`layout::CONFIG_PAGE_GPA`).
//!
//! igvm-build writes it as ordinary page data into the IGVM file, so every
//! loader copies it (upstream QEMU's loader has no COMMAND_LINE parameter
//! support) and confidential platforms measure it into the launch digest.
//! It starts with a [`ConfigHeader`] and carries the command line; the rest
//! of the page, from [`FREE_OFFSET`], is room for further configuration.
//!
//! igvm-build locates the page in a finished IGVM file by its magic to write
//! another command line into a copy of the file; the kernel reads the command
//! line through `BootInfo::cmdline_gpa`/`cmdline_size`, which point into it.

use crate::layout::PAGE_SIZE;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `ConfigHeader::magic`: "SVSMCFG\0" little-endian.
pub const CONFIG_MAGIC: u64 = u64::from_le_bytes(*b"SVSMCFG\0");
/// Bumped whenever the page's format changes.
pub const CONFIG_VERSION: u32 = 1;
/// Where the command line starts in the page.
pub const CMDLINE_OFFSET: u32 = 0x100;
/// Bytes reserved for the command line, including its terminating NUL.
pub const CMDLINE_CAPACITY: u32 = 0x100;
/// First byte of the page not used by this version of the format.
pub const FREE_OFFSET: u32 = CMDLINE_OFFSET + CMDLINE_CAPACITY;

/// The start of the configuration page.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq)]
pub struct ConfigHeader {
    pub magic: u64,
    pub version: u32,
    /// Bytes of the page this format covers (one page).
    pub size: u32,
    /// The command line: NUL-terminated UTF-8 at `cmdline_offset`, at most
    /// `cmdline_capacity` bytes including the NUL.
    pub cmdline_offset: u32,
    pub cmdline_capacity: u32,
    pub reserved: [u32; 10],
}

/// Why a page is not a usable configuration page, or a command line does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No configuration magic at the start of the page.
    NotAConfigPage,
    /// A format version this code does not know.
    Version(u32),
    /// The header's command-line range lies outside the page or overlaps the header.
    BadCmdlineRange,
    /// The command line needs this many bytes (with its NUL), more than the capacity.
    CmdlineTooLong { needed: usize, capacity: usize },
    /// The command line contains a NUL byte.
    CmdlineHasNul,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotAConfigPage => f.write_str("not an SVSM configuration page (bad magic)"),
            Self::Version(v) => write!(
                f,
                "SVSM configuration page version {v} (expected {CONFIG_VERSION})"
            ),
            Self::BadCmdlineRange => {
                f.write_str("SVSM configuration page: command-line range outside the page")
            }
            Self::CmdlineTooLong { needed, capacity } => write!(
                f,
                "command line needs {needed} bytes with its NUL, the configuration page holds {capacity}"
            ),
            Self::CmdlineHasNul => f.write_str("the command line contains a NUL byte"),
        }
    }
}

impl ConfigHeader {
    /// The header of a fresh page in the current format.
    pub fn current() -> Self {
        Self {
            magic: CONFIG_MAGIC,
            version: CONFIG_VERSION,
            size: PAGE_SIZE as u32,
            cmdline_offset: CMDLINE_OFFSET,
            cmdline_capacity: CMDLINE_CAPACITY,
            reserved: [0; 10],
        }
    }

    /// Reads and checks the header at the start of `page`.
    pub fn parse(page: &[u8]) -> Result<Self, ConfigError> {
        let (h, _) = Self::read_from_prefix(page).map_err(|_| ConfigError::NotAConfigPage)?;
        if h.magic != CONFIG_MAGIC {
            return Err(ConfigError::NotAConfigPage);
        }
        if h.version != CONFIG_VERSION {
            return Err(ConfigError::Version(h.version));
        }
        let end = h.cmdline_offset.checked_add(h.cmdline_capacity);
        let header_len = core::mem::size_of::<Self>() as u32;
        if h.cmdline_offset < header_len
            || h.cmdline_capacity == 0
            || end.is_none_or(|e| e as usize > page.len() || e > h.size)
        {
            return Err(ConfigError::BadCmdlineRange);
        }
        Ok(h)
    }

    fn cmdline_range(&self) -> core::ops::Range<usize> {
        let start = self.cmdline_offset as usize;
        start..start + self.cmdline_capacity as usize
    }
}

/// Writes `cmdline` (NUL-terminated, the rest of its field zeroed) into the
/// configuration page `page`, whose header must be valid.
pub fn write_cmdline(page: &mut [u8], cmdline: &str) -> Result<(), ConfigError> {
    let h = ConfigHeader::parse(page)?;
    if cmdline.as_bytes().contains(&0) {
        return Err(ConfigError::CmdlineHasNul);
    }
    let field = &mut page[h.cmdline_range()];
    let needed = cmdline.len() + 1;
    if needed > field.len() {
        return Err(ConfigError::CmdlineTooLong {
            needed,
            capacity: field.len(),
        });
    }
    field.fill(0);
    field[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
    Ok(())
}

/// The command line stored in the configuration page `page` (up to its NUL).
pub fn read_cmdline(page: &[u8]) -> Result<&[u8], ConfigError> {
    let h = ConfigHeader::parse(page)?;
    let field = &page[h.cmdline_range()];
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    Ok(&field[..len])
}

/// A fresh configuration page holding `cmdline`.
#[cfg(feature = "alloc")]
pub fn encode(cmdline: &str) -> Result<alloc::vec::Vec<u8>, ConfigError> {
    let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
    let h = ConfigHeader::current();
    page[..core::mem::size_of::<ConfigHeader>()].copy_from_slice(h.as_bytes());
    write_cmdline(&mut page, cmdline)?;
    Ok(page)
}

const _: () = {
    assert!(core::mem::size_of::<ConfigHeader>() == 64);
    assert!(CMDLINE_OFFSET as usize >= core::mem::size_of::<ConfigHeader>());
    assert!(FREE_OFFSET as u64 <= PAGE_SIZE);
};

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rewrite() {
        let mut page = encode("test=smoke").unwrap();
        assert_eq!(page.len(), PAGE_SIZE as usize);
        assert_eq!(read_cmdline(&page).unwrap(), b"test=smoke");
        assert_eq!(&page[CMDLINE_OFFSET as usize..][..11], b"test=smoke\0");
        write_cmdline(&mut page, "x").unwrap();
        assert_eq!(read_cmdline(&page).unwrap(), b"x");
        // The old, longer text is gone, not just terminated.
        assert!(
            page[CMDLINE_OFFSET as usize + 1..FREE_OFFSET as usize]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(read_cmdline(&encode("").unwrap()).unwrap(), b"");
    }

    #[test]
    fn limits_and_bad_pages() {
        let max = "a".repeat(CMDLINE_CAPACITY as usize - 1);
        assert_eq!(
            read_cmdline(&encode(&max).unwrap()).unwrap(),
            max.as_bytes()
        );
        let long = "a".repeat(CMDLINE_CAPACITY as usize);
        assert_eq!(
            encode(&long).unwrap_err(),
            ConfigError::CmdlineTooLong {
                needed: CMDLINE_CAPACITY as usize + 1,
                capacity: CMDLINE_CAPACITY as usize
            }
        );
        assert_eq!(encode("a\0b").unwrap_err(), ConfigError::CmdlineHasNul);
        assert_eq!(
            read_cmdline(&[0u8; 4096]).unwrap_err(),
            ConfigError::NotAConfigPage
        );
        assert_eq!(
            read_cmdline(&[0u8; 8]).unwrap_err(),
            ConfigError::NotAConfigPage
        );
        let mut page = encode("").unwrap();
        page[8] = 9;
        assert_eq!(read_cmdline(&page).unwrap_err(), ConfigError::Version(9));
        for (off, cap) in [
            (0x10u32, 0x10u32),
            (0xff0, 0x100),
            (0x100, 0),
            (u32::MAX, 2),
        ] {
            let mut page = encode("").unwrap();
            page[16..20].copy_from_slice(&off.to_le_bytes());
            page[20..24].copy_from_slice(&cap.to_le_bytes());
            assert_eq!(
                read_cmdline(&page).unwrap_err(),
                ConfigError::BadCmdlineRange,
                "{off:#x}+{cap:#x}"
            );
        }
    }
}
