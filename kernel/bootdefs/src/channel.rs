//! The SVSM<->VMM channel configuration: which protocols (and versions) the
//! SVSM offers the guest, the guest's VMPL and feature flags. It lives in the
//! measured configuration page (`config`), so a verifier sees it in the
//! launch digest; the kernel parses it as untrusted input (every field is
//! range-checked, each refusal is a named [`ChannelError`]).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `ChannelBlock::magic`: "SVCH" little-endian.
pub const CHANNEL_MAGIC: u32 = u32::from_le_bytes(*b"SVCH");
/// Protocol entries a channel block holds.
pub const MAX_PROTOCOLS: usize = 8;
/// The protocol numbers igvm-build knows by name.
pub const PROTOCOL_NAMES: [(&str, u32); 4] = [("core", 0), ("attest", 1), ("vtpm", 2), ("apic", 3)];

/// Feature flags of the channel.
pub mod features {
    /// Guest vCPUs run with Alternate Injection (the APIC protocol's
    /// precondition).
    pub const ALTERNATE_INJECTION: u64 = 1 << 0;
    /// Every flag this format defines.
    pub const KNOWN: u64 = ALTERNATE_INJECTION;
}

/// One enabled protocol and its version range (inclusive).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ProtocolEntry {
    pub id: u32,
    pub min_version: u32,
    pub max_version: u32,
    pub reserved: u32,
}

impl ProtocolEntry {
    pub const fn new(id: u32, min_version: u32, max_version: u32) -> Self {
        Self {
            id,
            min_version,
            max_version,
            reserved: 0,
        }
    }
}

/// The channel block as stored in the configuration page.
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ChannelBlock {
    pub magic: u32,
    /// Bytes of this block (`size_of::<ChannelBlock>()`).
    pub size: u32,
    /// The VMPL the guest runs at (1-3).
    pub guest_vmpl: u8,
    /// Entries of `protocols` in use; the rest are zero.
    pub protocol_count: u8,
    /// PVALIDATE entries handled per call before INCOMPLETE (0: no limit).
    pub pvalidate_budget: u16,
    pub reserved: u32,
    pub features: u64,
    pub protocols: [ProtocolEntry; MAX_PROTOCOLS],
}

/// Why a channel block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The configuration header's channel range is outside the page, overlaps
    /// the header or the command line, or is not one block long.
    BadRange,
    /// No channel magic.
    Magic(u32),
    /// The block's own size field is not the block's size.
    Size(u32),
    /// The guest VMPL is not 1, 2 or 3.
    GuestVmpl(u8),
    /// More protocol entries than the block holds.
    ProtocolCount(u8),
    /// A protocol with version 0 or min > max.
    ProtocolVersions { id: u32, min: u32, max: u32 },
    /// A protocol listed twice.
    DuplicateProtocol(u32),
    /// The core protocol (0) is not enabled.
    NoCoreProtocol,
    /// Feature flags this format does not define.
    UnknownFeatures(u64),
    /// A reserved field or an unused protocol slot is not zero.
    ReservedNotZero,
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRange => {
                f.write_str("SVSM channel: block range outside the configuration page")
            }
            Self::Magic(m) => write!(f, "SVSM channel: bad magic {m:#x}"),
            Self::Size(s) => write!(
                f,
                "SVSM channel: block size {s} (expected {})",
                core::mem::size_of::<ChannelBlock>()
            ),
            Self::GuestVmpl(v) => write!(f, "SVSM channel: guest VMPL {v} (must be 1-3)"),
            Self::ProtocolCount(n) => {
                write!(f, "SVSM channel: {n} protocols (at most {MAX_PROTOCOLS})")
            }
            Self::ProtocolVersions { id, min, max } => write!(
                f,
                "SVSM channel: protocol {id} versions {min}-{max} (need 1 <= min <= max)"
            ),
            Self::DuplicateProtocol(id) => write!(f, "SVSM channel: protocol {id} listed twice"),
            Self::NoCoreProtocol => {
                f.write_str("SVSM channel: the core protocol (0) is not enabled")
            }
            Self::UnknownFeatures(b) => write!(f, "SVSM channel: unknown feature flags {b:#x}"),
            Self::ReservedNotZero => {
                f.write_str("SVSM channel: reserved field or unused protocol slot not zero")
            }
        }
    }
}

/// A checked channel configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    block: ChannelBlock,
}

impl Default for ChannelConfig {
    /// Core protocol version 1, guest at VMPL 1, no features, no budget.
    fn default() -> Self {
        Self::new(1, &[ProtocolEntry::new(0, 1, 1)], 0, 0).expect("the default is valid")
    }
}

impl ChannelConfig {
    /// A configuration from its parts, checked like a parsed one.
    pub fn new(
        guest_vmpl: u8,
        protocols: &[ProtocolEntry],
        features: u64,
        pvalidate_budget: u16,
    ) -> Result<Self, ChannelError> {
        if protocols.len() > MAX_PROTOCOLS {
            return Err(ChannelError::ProtocolCount(protocols.len().min(255) as u8));
        }
        let mut block = ChannelBlock {
            magic: CHANNEL_MAGIC,
            size: core::mem::size_of::<ChannelBlock>() as u32,
            guest_vmpl,
            protocol_count: protocols.len() as u8,
            pvalidate_budget,
            reserved: 0,
            features,
            protocols: [ProtocolEntry::default(); MAX_PROTOCOLS],
        };
        block.protocols[..protocols.len()].copy_from_slice(protocols);
        Self::check(block)
    }

    /// Parses and checks a stored block.
    pub fn parse(bytes: &[u8]) -> Result<Self, ChannelError> {
        let (block, _) =
            ChannelBlock::read_from_prefix(bytes).map_err(|_| ChannelError::BadRange)?;
        Self::check(block)
    }

    fn check(b: ChannelBlock) -> Result<Self, ChannelError> {
        if b.magic != CHANNEL_MAGIC {
            return Err(ChannelError::Magic(b.magic));
        }
        if b.size as usize != core::mem::size_of::<ChannelBlock>() {
            return Err(ChannelError::Size(b.size));
        }
        if !(1..=3).contains(&b.guest_vmpl) {
            return Err(ChannelError::GuestVmpl(b.guest_vmpl));
        }
        let n = usize::from(b.protocol_count);
        if n > MAX_PROTOCOLS {
            return Err(ChannelError::ProtocolCount(b.protocol_count));
        }
        if b.reserved != 0
            || b.protocols[n..]
                .iter()
                .any(|p| *p != ProtocolEntry::default())
        {
            return Err(ChannelError::ReservedNotZero);
        }
        for (i, p) in b.protocols[..n].iter().enumerate() {
            if p.reserved != 0 {
                return Err(ChannelError::ReservedNotZero);
            }
            if p.min_version == 0 || p.min_version > p.max_version {
                return Err(ChannelError::ProtocolVersions {
                    id: p.id,
                    min: p.min_version,
                    max: p.max_version,
                });
            }
            if b.protocols[..i].iter().any(|q| q.id == p.id) {
                return Err(ChannelError::DuplicateProtocol(p.id));
            }
        }
        if !b.protocols[..n].iter().any(|p| p.id == 0) {
            return Err(ChannelError::NoCoreProtocol);
        }
        if b.features & !features::KNOWN != 0 {
            return Err(ChannelError::UnknownFeatures(b.features & !features::KNOWN));
        }
        Ok(Self { block: b })
    }

    pub fn guest_vmpl(&self) -> u8 {
        self.block.guest_vmpl
    }

    pub fn features(&self) -> u64 {
        self.block.features
    }

    pub fn pvalidate_budget(&self) -> u16 {
        self.block.pvalidate_budget
    }

    /// The enabled protocols.
    pub fn protocols(&self) -> &[ProtocolEntry] {
        &self.block.protocols[..usize::from(self.block.protocol_count)]
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        self.block.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(c: &ChannelConfig) -> [u8; core::mem::size_of::<ChannelBlock>()] {
        let mut b = [0u8; core::mem::size_of::<ChannelBlock>()];
        b.copy_from_slice(c.as_bytes());
        b
    }

    fn with(f: impl FnOnce(&mut ChannelBlock)) -> Result<ChannelConfig, ChannelError> {
        let mut b = ChannelBlock::read_from_bytes(&stored(&ChannelConfig::default())).unwrap();
        f(&mut b);
        ChannelConfig::parse(b.as_bytes())
    }

    #[test]
    fn round_trip() {
        let c = ChannelConfig::new(
            2,
            &[ProtocolEntry::new(0, 1, 1), ProtocolEntry::new(1, 1, 2)],
            features::ALTERNATE_INJECTION,
            64,
        )
        .unwrap();
        let back = ChannelConfig::parse(&stored(&c)).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.guest_vmpl(), 2);
        assert_eq!(back.protocols()[1], ProtocolEntry::new(1, 1, 2));
        assert_eq!(back.features(), 1);
        assert_eq!(back.pvalidate_budget(), 64);
        assert_eq!(core::mem::size_of::<ChannelBlock>(), 152);
        let d = ChannelConfig::default();
        assert_eq!(d.protocols(), &[ProtocolEntry::new(0, 1, 1)]);
        assert_eq!(d.guest_vmpl(), 1);
    }

    #[test]
    fn every_bad_field_is_named() {
        use ChannelError::*;
        assert_eq!(ChannelConfig::parse(&[0u8; 10]), Err(BadRange));
        assert_eq!(with(|b| b.magic = 1), Err(Magic(1)));
        assert_eq!(with(|b| b.size = 8), Err(Size(8)));
        for v in [0, 4, 255] {
            assert_eq!(with(|b| b.guest_vmpl = v), Err(GuestVmpl(v)));
        }
        assert_eq!(with(|b| b.protocol_count = 9), Err(ProtocolCount(9)));
        assert_eq!(with(|b| b.reserved = 1), Err(ReservedNotZero));
        assert_eq!(with(|b| b.protocols[0].reserved = 1), Err(ReservedNotZero));
        assert_eq!(with(|b| b.protocols[3].id = 5), Err(ReservedNotZero));
        assert_eq!(
            with(|b| b.protocols[0].min_version = 0),
            Err(ProtocolVersions {
                id: 0,
                min: 0,
                max: 1
            })
        );
        assert_eq!(
            with(|b| b.protocols[0].min_version = 2),
            Err(ProtocolVersions {
                id: 0,
                min: 2,
                max: 1
            })
        );
        assert_eq!(
            with(|b| {
                b.protocol_count = 2;
                b.protocols[1] = ProtocolEntry::new(0, 1, 1);
            }),
            Err(DuplicateProtocol(0))
        );
        assert_eq!(with(|b| b.protocols[0].id = 1), Err(NoCoreProtocol));
        assert_eq!(with(|b| b.features = 6), Err(UnknownFeatures(6)));
        assert_eq!(
            ChannelConfig::new(1, &[ProtocolEntry::new(0, 1, 1); 9], 0, 0),
            Err(ProtocolCount(9))
        );
        assert_eq!(ChannelConfig::new(1, &[], 0, 0), Err(NoCoreProtocol));
    }
}
