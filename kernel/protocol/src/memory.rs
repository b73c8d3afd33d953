//! Copy-only access to guest-physical memory.
//!
//! The protocol code never holds a reference into guest memory: it copies
//! bytes in with [`GuestMemory::read`] and out with [`GuestMemory::write`],
//! so a guest changing its memory while a call runs cannot change what the
//! SVSM already checked. Every guest byte a call needs is read once.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// An access outside guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError {
    pub gpa: u64,
    pub len: u64,
}

/// Guest RAM as the SVSM reaches it: by copy. Implementations refuse any
/// range that is not wholly guest RAM (including the SVSM's own memory and
/// ranges that wrap around), and never hand out a reference. On SEV-SNP an
/// access to a page that is not validated faults, so an implementation
/// there also refuses such pages (the protocol keeps the Calling Area and a
/// list in use from being invalidated, and zeroes a page only after
/// validating it).
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `data` to `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
    /// Zeroes `len` bytes from `gpa` (up to a 2 MiB page at once; no
    /// buffer of that size is built).
    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError>;
}

/// Reads a small plain-data structure (headers, entries: a few bytes on the
/// stack; page-sized ones go through `T::new_box_zeroed` and `read`).
pub fn read_obj<T>(mem: &(impl GuestMemory + ?Sized), gpa: u64) -> Result<T, MemError>
where
    T: FromBytes + IntoBytes + KnownLayout + Immutable,
{
    let mut v = T::new_zeroed();
    mem.read(gpa, v.as_mut_bytes())?;
    Ok(v)
}

/// Writes a small plain-data structure.
pub fn write_obj<T>(mem: &mut (impl GuestMemory + ?Sized), gpa: u64, v: &T) -> Result<(), MemError>
where
    T: IntoBytes + Immutable,
{
    mem.write(gpa, v.as_bytes())
}
