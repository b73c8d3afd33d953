//! The services manifest (SVSM specification 58019, attestation): a header
//! `{GUID (services manifest), u32 total size, u32 number of services}`,
//! one `{GUID, u32 data offset, u32 data size}` entry per service (offsets
//! from the start of the manifest), then each service's data. Produced in
//! pieces, without allocating: the same pieces feed the hash and the copy
//! to the guest.

use crate::guid::{Guid, SERVICES_MANIFEST};

pub const HEADER_SIZE: usize = 24;
pub const ENTRY_SIZE: usize = 24;

/// A service the SVSM offers, with its manifest data.
#[derive(Clone, Copy, Debug)]
pub struct Service<'a> {
    pub guid: Guid,
    pub data: &'a [u8],
}

/// A manifest of all services (SERVICES) or of one (SINGLE_SERVICE).
#[derive(Clone, Copy, Debug)]
pub struct Manifest<'a> {
    services: &'a [Service<'a>],
}

impl<'a> Manifest<'a> {
    pub fn all(services: &'a [Service<'a>]) -> Self {
        Manifest { services }
    }

    /// The manifest of the one service with `guid`, if offered.
    pub fn single(services: &'a [Service<'a>], guid: &Guid) -> Option<Self> {
        let i = services.iter().position(|s| s.guid == *guid)?;
        Some(Manifest {
            services: &services[i..=i],
        })
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        HEADER_SIZE
            + self.services.len() * ENTRY_SIZE
            + self.services.iter().map(|s| s.data.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Hands the manifest to `f` in order, piece by piece.
    pub fn for_each_piece(&self, mut f: impl FnMut(&[u8])) {
        let mut header = [0u8; HEADER_SIZE];
        header[..16].copy_from_slice(&SERVICES_MANIFEST.0);
        header[16..20].copy_from_slice(&(self.len() as u32).to_le_bytes());
        header[20..24].copy_from_slice(&(self.services.len() as u32).to_le_bytes());
        f(&header);
        let mut offset = HEADER_SIZE + self.services.len() * ENTRY_SIZE;
        for s in self.services {
            let mut e = [0u8; ENTRY_SIZE];
            e[..16].copy_from_slice(&s.guid.0);
            e[16..20].copy_from_slice(&(offset as u32).to_le_bytes());
            e[20..24].copy_from_slice(&(s.data.len() as u32).to_le_bytes());
            f(&e);
            offset += s.data.len();
        }
        for s in self.services {
            f(s.data);
        }
    }
}
