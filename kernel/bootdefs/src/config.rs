//! The SVSM configuration page (`layout::CONFIG_PAGE_GPA`).
//!
//! igvm-build writes it as ordinary page data into the IGVM file, so every
//! loader copies it (upstream QEMU's loader has no COMMAND_LINE parameter
//! support) and confidential platforms measure it into the launch digest.
//! It starts with a [`ConfigHeader`] and carries the command line and the
//! SVSM<->VMM channel configuration ([`crate::channel`]); the rest of the
//! page, from [`FREE_OFFSET`], is room for further configuration.
//!
//! igvm-build locates the page in a finished IGVM file by its magic to write
//! another command line into a copy of the file; the kernel reads the command
//! line through `BootInfo::cmdline_gpa`/`cmdline_size`, which point into it.

use crate::channel::{ChannelBlock, ChannelConfig, ChannelError};
use crate::layout::PAGE_SIZE;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `ConfigHeader::magic`: "SVSMCFG\0" little-endian.
pub const CONFIG_MAGIC: u64 = u64::from_le_bytes(*b"SVSMCFG\0");
/// Bumped whenever the page's format changes.
pub const CONFIG_VERSION: u32 = 2;
/// Where the command line starts in the page.
pub const CMDLINE_OFFSET: u32 = 0x100;
/// Bytes reserved for the command line, including its terminating NUL.
pub const CMDLINE_CAPACITY: u32 = 0x100;
/// Where the channel configuration starts, and the bytes reserved for it.
pub const CHANNEL_OFFSET: u32 = CMDLINE_OFFSET + CMDLINE_CAPACITY;
pub const CHANNEL_CAPACITY: u32 = 0x100;
/// First byte of the page not used by this version of the format.
pub const FREE_OFFSET: u32 = CHANNEL_OFFSET + CHANNEL_CAPACITY;

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
    /// The channel configuration: a [`ChannelBlock`] at `channel_offset`,
    /// `channel_size` bytes.
    pub channel_offset: u32,
    pub channel_size: u32,
    pub reserved: [u32; 8],
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
    /// The channel configuration is refused.
    Channel(ChannelError),
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
            Self::Channel(e) => write!(f, "{e}"),
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
            channel_offset: CHANNEL_OFFSET,
            channel_size: core::mem::size_of::<ChannelBlock>() as u32,
            reserved: [0; 8],
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

    /// The channel block's bytes in a page of `page_len` bytes: one block,
    /// after the header, inside the page, not overlapping the command line.
    fn channel_range(&self, page_len: usize) -> Result<core::ops::Range<usize>, ConfigError> {
        let bad = ConfigError::Channel(ChannelError::BadRange);
        let start = self.channel_offset as usize;
        let end = start.checked_add(self.channel_size as usize).ok_or(bad)?;
        let cmd = self.cmdline_range();
        if self.channel_size as usize != core::mem::size_of::<ChannelBlock>()
            || start < core::mem::size_of::<Self>()
            || end > page_len
            || end > self.size as usize
            || (start < cmd.end && cmd.start < end)
        {
            return Err(bad);
        }
        Ok(start..end)
    }
}

/// Writes the channel configuration into the configuration page `page`.
pub fn write_channel(page: &mut [u8], channel: &ChannelConfig) -> Result<(), ConfigError> {
    let h = ConfigHeader::parse(page)?;
    let r = h.channel_range(page.len())?;
    page[r].copy_from_slice(channel.as_bytes());
    Ok(())
}

/// The channel configuration stored in the configuration page `page`, checked.
pub fn read_channel(page: &[u8]) -> Result<ChannelConfig, ConfigError> {
    let h = ConfigHeader::parse(page)?;
    let r = h.channel_range(page.len())?;
    ChannelConfig::parse(&page[r]).map_err(ConfigError::Channel)
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

/// A fresh configuration page holding `cmdline` and the default channel
/// configuration.
#[cfg(feature = "alloc")]
pub fn encode(cmdline: &str) -> Result<alloc::vec::Vec<u8>, ConfigError> {
    encode_with(cmdline, &ChannelConfig::default())
}

/// A fresh configuration page holding `cmdline` and `channel`.
#[cfg(feature = "alloc")]
pub fn encode_with(
    cmdline: &str,
    channel: &ChannelConfig,
) -> Result<alloc::vec::Vec<u8>, ConfigError> {
    let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
    let h = ConfigHeader::current();
    page[..core::mem::size_of::<ConfigHeader>()].copy_from_slice(h.as_bytes());
    write_cmdline(&mut page, cmdline)?;
    write_channel(&mut page, channel)?;
    Ok(page)
}

const _: () = {
    assert!(core::mem::size_of::<ConfigHeader>() == 64);
    assert!(CMDLINE_OFFSET as usize >= core::mem::size_of::<ConfigHeader>());
    assert!(FREE_OFFSET as u64 <= PAGE_SIZE);
    assert!(core::mem::size_of::<ChannelBlock>() <= CHANNEL_CAPACITY as usize);
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
            page[CMDLINE_OFFSET as usize + 1..CHANNEL_OFFSET as usize]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(read_cmdline(&encode("").unwrap()).unwrap(), b"");
    }

    #[test]
    fn channel_round_trip_and_bad_ranges() {
        use crate::channel::ProtocolEntry;
        let page = encode("x").unwrap();
        assert_eq!(read_channel(&page).unwrap(), ChannelConfig::default());
        let c = ChannelConfig::new(
            3,
            &[ProtocolEntry::new(0, 1, 1), ProtocolEntry::new(1, 1, 1)],
            0,
            7,
        )
        .unwrap();
        let mut page = encode_with("test=smoke", &c).unwrap();
        assert_eq!(read_channel(&page).unwrap(), c);
        assert_eq!(read_cmdline(&page).unwrap(), b"test=smoke");
        // The channel does not disturb the command line, nor the reverse.
        write_cmdline(&mut page, &"b".repeat(CMDLINE_CAPACITY as usize - 1)).unwrap();
        assert_eq!(read_channel(&page).unwrap(), c);
        page[CHANNEL_OFFSET as usize + 8] = 0; // guest VMPL
        assert_eq!(
            read_channel(&page).unwrap_err(),
            ConfigError::Channel(ChannelError::GuestVmpl(0))
        );
        for (off, size) in [
            (0x10u32, 152u32),
            (0x180, 152),
            (0xfa0, 152),
            (CHANNEL_OFFSET, 151),
            (u32::MAX, 152),
        ] {
            let mut page = encode("").unwrap();
            page[24..28].copy_from_slice(&off.to_le_bytes());
            page[28..32].copy_from_slice(&size.to_le_bytes());
            assert_eq!(
                read_channel(&page).unwrap_err(),
                ConfigError::Channel(ChannelError::BadRange),
                "{off:#x}+{size}"
            );
            // The command line stays readable.
            assert_eq!(read_cmdline(&page).unwrap(), b"");
        }
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
