//! Copy-only access to guest memory: bytes are copied in or out through
//! the direct map and only for guest RAM: the guest's own view (pages its
//! nested page tables map) for instruction fetches and the launch, the
//! protocol's view (validated pages, `ProtocolMem`) for SVSM calls. No
//! reference into guest memory leaves this module.

use super::backend::Shared;
use super::npt::Npt;
use spin::Mutex;
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};
use svsm_protocol::{GuestMemory, MemError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadGpa(pub u64);

/// Checks every page of [gpa, gpa+len) is mapped (and writable when `write`).
fn check(npt: &Npt, gpa: u64, len: usize, write: bool) -> Result<(), BadGpa> {
    let end = gpa.checked_add(len as u64).ok_or(BadGpa(gpa))?;
    if !npt.is_guest_ram(gpa, len as u64) {
        return Err(BadGpa(gpa));
    }
    let mut p = gpa & !(PAGE_SIZE - 1);
    while p < end {
        let (mapped, writable) = npt.state(p);
        if !mapped || (write && !writable) {
            return Err(BadGpa(p.max(gpa)));
        }
        p += PAGE_SIZE;
    }
    Ok(())
}

/// Copies guest memory at `gpa` into `buf`.
pub fn read(npt: &Npt, gpa: u64, buf: &mut [u8]) -> Result<(), BadGpa> {
    check(npt, gpa, buf.len(), false)?;
    // SAFETY: the range is validated guest RAM inside the direct map (checked
    // above); the guest may change it concurrently only between exits, and
    // it is not running now. Copied once, bytewise, into SVSM memory.
    unsafe {
        core::ptr::copy_nonoverlapping(phys_to_virt(gpa) as *const u8, buf.as_mut_ptr(), buf.len())
    };
    Ok(())
}

/// Copies `data` into guest memory at `gpa`. Pages the guest may only
/// read (its VMSA pages) are refused like unmapped ones.
pub fn write(npt: &Npt, gpa: u64, data: &[u8]) -> Result<(), BadGpa> {
    check(npt, gpa, data.len(), true)?;
    // SAFETY: as in `read`; the destination is guest RAM, never SVSM memory.
    unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), phys_to_virt(gpa) as *mut u8, data.len())
    };
    Ok(())
}

pub fn read_u64(npt: &Npt, gpa: u64) -> Result<u64, BadGpa> {
    let mut b = [0u8; 8];
    read(npt, gpa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Translates the guest-virtual `va` through the guest's own page tables
/// (CR3 `cr3`), reading each table entry by copy.
pub fn guest_virt_to_phys(npt: &Npt, cr3: u64, va: u64) -> Option<u64> {
    svsm_defs::paging::translate(cr3, va, svsm_defs::paging::PageEncryption::NONE, |t, i| {
        read_u64(npt, t + i as u64 * 8).ok()
    })
    .map(|(pa, _)| pa)
}

/// Copies up to `buf.len()` instruction bytes at guest RIP `rip` (stopping
/// at the first page that does not translate); how many were copied.
pub fn fetch_code(npt: &Npt, cr3: u64, rip: u64, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        let va = rip.wrapping_add(n as u64);
        let Some(pa) = guest_virt_to_phys(npt, cr3, va) else {
            break;
        };
        let in_page = (PAGE_SIZE - (pa % PAGE_SIZE)) as usize;
        let take = in_page.min(buf.len() - n);
        if read(npt, pa, &mut buf[n..n + take]).is_err() {
            break;
        }
        n += take;
    }
    n
}

/// Guest memory as the protocol handlers reach it: validated guest RAM,
/// copied; writes never reach a sealed VMSA page.
pub struct ProtocolMem<'a>(pub &'a Mutex<Shared>);

impl ProtocolMem<'_> {
    fn check(&self, gpa: u64, len: u64, write: bool) -> Result<(), MemError> {
        let err = MemError { gpa, len };
        let end = gpa.checked_add(len).ok_or(err)?;
        let s = self.0.lock();
        if !s.npt.is_guest_ram(gpa, len) {
            return Err(err);
        }
        let mut p = gpa & !(PAGE_SIZE - 1);
        while p < end {
            if s.covering(p).is_none() || (write && s.is_sealed(p)) {
                return Err(err);
            }
            p += PAGE_SIZE;
        }
        Ok(())
    }
}

impl GuestMemory for ProtocolMem<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(gpa, buf.len() as u64, false)?;
        // SAFETY: validated guest RAM inside the direct map (checked); the
        // guest is not running while the SVSM serves its call.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(gpa) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.check(gpa, data.len() as u64, true)?;
        // SAFETY: as in `read`; never SVSM memory, never a sealed VMSA.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), phys_to_virt(gpa) as *mut u8, data.len())
        };
        Ok(())
    }

    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.check(gpa, len, true)?;
        // SAFETY: as in `write`.
        unsafe { core::ptr::write_bytes(phys_to_virt(gpa) as *mut u8, 0, len as usize) };
        Ok(())
    }
}
