//! The list calls: PVALIDATE, DEPOSIT_MEM and WITHDRAW_MEM. A list is a
//! [`PvalidateListHeader`] and `entries` u64 entries that never cross the
//! end of the page the list starts in.

use super::{CoreProtocol, not_svsm, owned};
use crate::backend::PvalidateDone;
use crate::error::CallError;
use crate::memory::read_obj;
use crate::registry::Request;
use alloc::vec::Vec;
use svsm_defs::PAGE_SIZE;
use svsm_defs::svsm::{
    EntryPageSize, MemoryEntry, PVALIDATE_ENTRY_SIZE, PVALIDATE_HEADER_SIZE, PVALIDATE_NEXT_OFFSET,
    PvalidateEntry, PvalidateListHeader, pvalidate_max_entries, pvalidate_rc,
};
use zerocopy::IntoBytes;

/// A list as read from the guest: where it is, its header, and its entries
/// from `next` on (copied once, on the heap).
struct List {
    gpa: u64,
    entries: u16,
    next: u16,
    raw: Vec<u64>,
}

impl List {
    /// Reads the list at `gpa`: the header once, then the entries from
    /// `next` to `entries` once.
    fn read(core: &CoreProtocol, req: &Request<'_>, gpa: u64) -> Result<Self, CallError> {
        // A list on the Calling Area's header would reuse bytes `serve`
        // already read (call_pending is `entries`' low byte): the spec puts
        // lists in the buffer, from offset 8.
        if !gpa.is_multiple_of(8) || gpa == req.ca_gpa {
            return Err(CallError::InvalidParameter);
        }
        not_svsm(req.backend, gpa, PVALIDATE_HEADER_SIZE)?;
        // The list's page must still be the guest's.
        if core.owned.lock().overlaps(gpa, PVALIDATE_HEADER_SIZE) {
            return Err(CallError::InvalidAddress);
        }
        let h: PvalidateListHeader = read_obj(req.mem, gpa)?;
        let max = pvalidate_max_entries(gpa % PAGE_SIZE);
        if h.entries == 0 || u64::from(h.entries) > max || h.next >= h.entries {
            return Err(CallError::InvalidParameter);
        }
        let first = gpa + PVALIDATE_HEADER_SIZE + u64::from(h.next) * PVALIDATE_ENTRY_SIZE;
        let count = usize::from(h.entries - h.next);
        not_svsm(req.backend, first, count as u64 * PVALIDATE_ENTRY_SIZE)?;
        let mut raw = alloc::vec![0u64; count];
        req.mem.read(first, raw.as_mut_bytes())?;
        Ok(Self {
            gpa,
            entries: h.entries,
            next: h.next,
            raw,
        })
    }

    /// Records that the entry at `next` is done.
    fn advance(&mut self, req: &mut Request<'_>) -> Result<(), CallError> {
        self.next += 1;
        req.mem
            .write(self.gpa + PVALIDATE_NEXT_OFFSET, &self.next.to_le_bytes())
            .map_err(CallError::from)
    }

    /// The raw entry at index `next`.
    fn current(&self, first_next: u16) -> u64 {
        self.raw[usize::from(self.next - first_next)]
    }

    /// Whether `[gpa, gpa + len)` holds the list's page.
    fn page_in(&self, gpa: u64, len: u64) -> bool {
        let page = self.gpa & !(PAGE_SIZE - 1);
        page < gpa.saturating_add(len) && gpa < page + PAGE_SIZE
    }
}

/// Refuses a page that is not aligned to its size or touches the SVSM.
fn check_page(req: &Request<'_>, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
    if !gpa.is_multiple_of(size.bytes()) {
        return Err(CallError::InvalidParameter);
    }
    not_svsm(req.backend, gpa, size.bytes())
}

impl CoreProtocol {
    /// PVALIDATE: RCX = the list's GPA (in guest memory or in the Calling
    /// Area's buffer).
    pub(super) fn pvalidate_list(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let mut list = List::read(self, req, req.regs.rcx)?;
        let first = list.next;
        let mut done = 0u16;
        while list.next < list.entries {
            if self.pvalidate_budget != 0 && done == self.pvalidate_budget {
                return Err(CallError::Incomplete);
            }
            let entry = PvalidateEntry::decode(list.current(first))
                .map_err(|_| CallError::InvalidParameter)?;
            self.pvalidate_one(req, &list, &entry)?;
            list.advance(req)?;
            done += 1;
        }
        Ok(())
    }

    /// One entry: PVALIDATE, and for a page that became valid, zeroing
    /// before the guest gets access (a page the host remapped must not show
    /// the guest what it held before).
    fn pvalidate_one(
        &self,
        req: &mut Request<'_>,
        list: &List,
        e: &PvalidateEntry,
    ) -> Result<(), CallError> {
        check_page(req, e.gpa, e.size)?;
        let len = e.size.bytes();
        let _shared = self.pvalidate.read();
        {
            let owned = self.owned.lock();
            // The SVSM's pages are not the guest's to change; a Calling
            // Area or the list itself must stay valid while in use.
            if owned.overlaps(e.gpa, len)
                || (!e.validate
                    && (owned.is_ca(e.gpa, len, req.ca_gpa) || list.page_in(e.gpa, len)))
            {
                return Err(CallError::InvalidAddress);
            }
        }
        let done = req.backend.pvalidate(e.gpa, e.size, e.validate)?;
        if done == PvalidateDone::Unchanged && !e.ignore_cf {
            return Err(CallError::pvalidate(pvalidate_rc::FAIL_UNCHANGED));
        }
        // Only a page that became valid is zeroed and given to the guest:
        // one already valid keeps its contents and its access (a sealed
        // VMSA must not get guest access back this way).
        if e.validate && done == PvalidateDone::Changed {
            req.mem.zero(e.gpa, len)?;
            req.backend.grant_guest(e.gpa, e.size)?;
        }
        Ok(())
    }

    /// DEPOSIT_MEM: RCX = GPA of a list of pages the guest gives the SVSM.
    pub(super) fn deposit(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let mut list = List::read(self, req, req.regs.rcx)?;
        let first = list.next;
        while list.next < list.entries {
            let e = MemoryEntry::decode(list.current(first))
                .map_err(|_| CallError::InvalidParameter)?;
            check_page(req, e.gpa, e.size)?;
            let len = e.size.bytes();
            {
                let _exclusive = self.pvalidate.write();
                let mut owned = self.owned.lock();
                if owned.overlaps(e.gpa, len)
                    || owned.is_ca(e.gpa, len, req.ca_gpa)
                    || list.page_in(e.gpa, len)
                {
                    return Err(CallError::InvalidAddress);
                }
                req.backend.deposit(e.gpa, e.size)?;
                owned.insert(e.gpa, len, owned::Kind::Deposited);
            }
            list.advance(req)?;
        }
        Ok(())
    }

    /// WITHDRAW_MEM: RCX = GPA of a list the SVSM fills with pages it gives
    /// back, from `next` up to `entries` (the list's capacity); `next` ends
    /// at the number of entries filled. The guest validates the pages again
    /// before use.
    pub(super) fn withdraw(&self, req: &mut Request<'_>) -> Result<(), CallError> {
        let mut list = List::read(self, req, req.regs.rcx)?;
        while list.next < list.entries {
            let page = {
                let _exclusive = self.pvalidate.write();
                let page = req.backend.withdraw();
                if let Some((gpa, _)) = page {
                    self.owned.lock().remove(gpa);
                }
                page
            };
            let Some((gpa, size)) = page else {
                break;
            };
            let at = list.gpa + PVALIDATE_HEADER_SIZE + u64::from(list.next) * PVALIDATE_ENTRY_SIZE;
            req.mem
                .write(at, &MemoryEntry { size, gpa }.encode().to_le_bytes())?;
            list.advance(req)?;
        }
        Ok(())
    }
}
