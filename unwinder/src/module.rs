//! One loaded image's CFI: `.eh_frame` found through the `.eh_frame_hdr`
//! binary-search table (read in place for its usual encoding).

use crate::Slice;
use crate::table::UnwindTable;
use core::fmt;
use gimli::{
    BaseAddresses, CommonInformationEntry, EhFrame, EhFrameHdr, EhFrameOffset,
    FrameDescriptionEntry, LittleEndian, ParsedEhFrameHdr, UnwindSection,
};

/// `DW_EH_PE_datarel | DW_EH_PE_sdata4`: the usual `.eh_frame_hdr` table
/// encoding, searched directly (see [`FastTable`]).
const DATAREL_SDATA4: u8 = 0x3b;

/// The location of the CFI sections of one loaded image.
#[derive(Clone, Copy, Debug)]
pub struct CfiSections<'a> {
    /// Contents of `.eh_frame_hdr` (must contain the binary-search table).
    pub eh_frame_hdr: &'a [u8],
    /// Virtual address at which `.eh_frame_hdr` is loaded.
    pub eh_frame_hdr_addr: u64,
    /// Contents of `.eh_frame`.
    pub eh_frame: &'a [u8],
    /// Virtual address at which `.eh_frame` is loaded.
    pub eh_frame_addr: u64,
}

/// One loaded image's CFI: the parsed `.eh_frame_hdr` search table and
/// `.eh_frame`. Construction validates the header; lookups never panic on
/// malformed data (they report `bad-cfi`).
pub struct Module<'a> {
    hdr: ParsedEhFrameHdr<Slice<'a>>,
    /// The search table, when its encoding allows searching it directly.
    fast: Option<FastTable<'a>>,
    pub(crate) eh_frame: EhFrame<Slice<'a>>,
    pub(crate) bases: BaseAddresses,
    /// A compact unwind table compiled from this module's CFI, tried
    /// before gimli (see [`Module::with_table`]).
    pub(crate) table: Option<UnwindTable<'a>>,
    eh_frame_addr: u64,
    eh_frame_len: usize,
    fde_count: usize,
    pc_start: u64,
    pc_end: u64,
}

impl fmt::Debug for Module<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("fde_count", &self.fde_count)
            .field("pc_start", &format_args!("{:#x}", self.pc_start))
            .field("pc_end", &format_args!("{:#x}", self.pc_end))
            .finish()
    }
}

/// Errors from [`Module::new`].
pub type ModuleError = &'static str;

impl<'a> Module<'a> {
    pub fn new(s: CfiSections<'a>) -> Result<Self, ModuleError> {
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(s.eh_frame_hdr_addr)
            .set_eh_frame(s.eh_frame_addr);
        let hdr = EhFrameHdr::new(s.eh_frame_hdr, LittleEndian)
            .parse(&bases, 8)
            .map_err(|_| "malformed .eh_frame_hdr")?;
        let ptr = hdr
            .eh_frame_ptr()
            .direct()
            .map_err(|_| ".eh_frame_hdr has an indirect eh_frame_ptr")?;
        if ptr != s.eh_frame_addr {
            return Err(".eh_frame_hdr eh_frame_ptr does not match the .eh_frame address");
        }
        let eh_frame = EhFrame::new(s.eh_frame, LittleEndian);
        let mut m = Module {
            hdr,
            eh_frame,
            bases,
            eh_frame_addr: s.eh_frame_addr,
            eh_frame_len: s.eh_frame.len(),
            fast: None,
            table: None,
            fde_count: 0,
            pc_start: 0,
            pc_end: 0,
        };
        let (count, first) = {
            let table = m
                .hdr
                .table()
                .ok_or(".eh_frame_hdr has no binary-search table")?;
            let mut iter = table.iter(&m.bases);
            let count = iter.size_hint().0;
            let first = match iter.next() {
                Ok(Some((loc, _))) => loc.direct().map_err(|_| "indirect FDE location")?,
                _ => return Err("malformed .eh_frame_hdr table"),
            };
            (count, first)
        };
        // Rows are at least 4 bytes; a larger count is corrupt (and would
        // overflow gimli's unchecked row arithmetic).
        if count > s.eh_frame_hdr.len() / 4 {
            return Err(".eh_frame_hdr fde_count exceeds the section");
        }
        m.fde_count = count;
        m.fast = FastTable::new(s.eh_frame_hdr, s.eh_frame_hdr_addr, count);
        m.pc_start = first;
        let last = m
            .table_entry(count.saturating_sub(1))
            .ok_or("malformed .eh_frame_hdr table")?;
        let fde = m.fde_at(last.1).map_err(|_| "malformed last FDE")?;
        m.pc_end = fde.end_address();
        if m.pc_end < m.pc_start {
            return Err(".eh_frame_hdr table is not sorted");
        }
        Ok(m)
    }

    /// Uses `table` (compiled from this module's CFI, see
    /// [`crate::compile`]) for the rows it expresses; gimli evaluates the
    /// others. A table that does not span exactly this module's FDE range
    /// is ignored (it cannot belong to this module).
    pub fn with_table(mut self, table: UnwindTable<'a>) -> Self {
        if table.pc_range() == (self.pc_start, self.pc_end) {
            self.table = Some(table);
        }
        self
    }

    /// The compact table in use, if any.
    pub fn table(&self) -> Option<&UnwindTable<'a>> {
        self.table.as_ref()
    }

    /// Number of FDEs in the search table.
    pub fn fde_count(&self) -> usize {
        self.fde_count
    }

    /// The range [start, end) from the first FDE to the end of the last one.
    pub fn pc_range(&self) -> (u64, u64) {
        (self.pc_start, self.pc_end)
    }

    /// Whether `pc` lies in the range spanned by this module's FDEs.
    pub fn spans(&self, pc: u64) -> bool {
        pc >= self.pc_start && pc < self.pc_end
    }

    /// The `n`th search-table entry: (initial location, FDE address).
    fn table_entry(&self, n: usize) -> Option<(u64, u64)> {
        if let Some(fast) = &self.fast {
            return fast.entry(n);
        }
        let table = self.hdr.table()?;
        let mut iter = table.iter(&self.bases);
        let (loc, fde) = iter.nth(n).ok()??;
        Some((loc.direct().ok()?, fde.direct().ok()?))
    }

    pub(crate) fn fde_at(&self, fde_addr: u64) -> gimli::Result<FrameDescriptionEntry<Slice<'a>>> {
        self.fde_at_with(fde_addr, EhFrame::cie_from_offset)
    }

    pub(crate) fn fde_at_with<F>(
        &self,
        fde_addr: u64,
        get_cie: F,
    ) -> gimli::Result<FrameDescriptionEntry<Slice<'a>>>
    where
        F: FnMut(
            &EhFrame<Slice<'a>>,
            &BaseAddresses,
            EhFrameOffset,
        ) -> gimli::Result<CommonInformationEntry<Slice<'a>>>,
    {
        // Computed here rather than with `EhHdrTable::pointer_to_offset`,
        // which subtracts without checking (a corrupt table entry below
        // `.eh_frame` would overflow).
        let off = fde_addr
            .checked_sub(self.eh_frame_addr)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < self.eh_frame_len)
            .ok_or(gimli::Error::BadBranchTarget(fde_addr))?;
        self.eh_frame
            .fde_from_offset(&self.bases, EhFrameOffset(off), get_cie)
    }

    /// The FDE covering `pc`, `Ok(None)` if there is none, `Err` if the CFI
    /// is malformed.
    pub(crate) fn fde_for(
        &self,
        pc: u64,
    ) -> Result<Option<FrameDescriptionEntry<Slice<'a>>>, ModuleError> {
        self.fde_for_with(pc, EhFrame::cie_from_offset)
    }

    /// [`Module::fde_for`], getting the FDE's CIE from `get_cie`.
    fn fde_for_with<F>(
        &self,
        pc: u64,
        get_cie: F,
    ) -> Result<Option<FrameDescriptionEntry<Slice<'a>>>, ModuleError>
    where
        F: FnMut(
            &EhFrame<Slice<'a>>,
            &BaseAddresses,
            EhFrameOffset,
        ) -> gimli::Result<CommonInformationEntry<Slice<'a>>>,
    {
        let Some(ptr) = self.fde_ptr(pc)? else {
            return Ok(None);
        };
        let fde = self
            .fde_at_with(ptr, get_cie)
            .map_err(|_| "malformed FDE")?;
        Ok(fde.contains(pc).then_some(fde))
    }

    /// The address of the FDE that may cover `pc` (the search table's
    /// candidate, to be checked with `contains`); `Ok(None)` without a
    /// table.
    pub(crate) fn fde_ptr(&self, pc: u64) -> Result<Option<u64>, ModuleError> {
        if let Some(fast) = &self.fast {
            return fast
                .lookup(pc)
                .map(Some)
                .ok_or("malformed .eh_frame_hdr table");
        }
        let Some(table) = self.hdr.table() else {
            return Ok(None);
        };
        table
            .lookup(pc, &self.bases)
            .and_then(|p| p.direct())
            .map(Some)
            .map_err(|_| "malformed .eh_frame_hdr table")
    }

    /// The [start, end) range of the FDE covering `pc`, if any.
    pub fn fde_range(&self, pc: u64) -> Option<(u64, u64)> {
        let fde = self.fde_for(pc).ok()??;
        Some((fde.initial_address(), fde.end_address()))
    }

    /// Calls `f(start, end)` for every FDE in search-table order. Stops and
    /// returns `Err` at the first malformed entry.
    pub fn for_each_fde(&self, mut f: impl FnMut(u64, u64)) -> Result<(), ModuleError> {
        self.for_each_fde_entry(|fde| f(fde.initial_address(), fde.end_address()))
    }

    /// Calls `f` with every FDE in search-table order. Stops and returns
    /// `Err` at the first malformed entry.
    pub(crate) fn for_each_fde_entry(
        &self,
        mut f: impl FnMut(&FrameDescriptionEntry<Slice<'a>>),
    ) -> Result<(), ModuleError> {
        let Some(table) = self.hdr.table() else {
            return Ok(());
        };
        let mut iter = table.iter(&self.bases);
        for _ in 0..self.fde_count {
            let (_, ptr) = match iter.next() {
                Ok(Some(e)) => e,
                _ => return Err("malformed .eh_frame_hdr table"),
            };
            let addr = ptr.direct().map_err(|_| "indirect FDE pointer")?;
            let fde = self.fde_at(addr).map_err(|_| "malformed FDE")?;
            f(&fde);
        }
        Ok(())
    }
}

/// The `.eh_frame_hdr` search table in its usual encoding
/// (`DW_EH_PE_datarel | DW_EH_PE_sdata4` pairs, after a 4-byte
/// `eh_frame_ptr` and `fde_count`), binary-searched in place. Other
/// encodings go through gimli's (slower, general) table reader.
#[derive(Clone, Copy, Debug)]
struct FastTable<'a> {
    /// The `fde_count` 8-byte entries.
    rows: &'a [u8],
    /// Base of `datarel`: the address of `.eh_frame_hdr`.
    base: u64,
}

impl<'a> FastTable<'a> {
    fn new(hdr: &'a [u8], hdr_addr: u64, count: usize) -> Option<Self> {
        let &[_version, ptr_enc, count_enc, table_enc, ..] = hdr else {
            return None;
        };
        // A direct 4-byte encoding (udata4 or sdata4, any application).
        let four = |enc: u8| enc != 0xff && enc & 0x80 == 0 && matches!(enc & 0x0f, 0x03 | 0x0b);
        if table_enc != DATAREL_SDATA4 || !four(ptr_enc) || !four(count_enc) || count == 0 {
            return None;
        }
        let len = count.checked_mul(8)?;
        let rows = hdr.get(12..)?.get(..len)?;
        Some(FastTable {
            rows,
            base: hdr_addr,
        })
    }

    fn count(&self) -> usize {
        self.rows.len() / 8
    }

    /// The `n`th entry: (initial location, FDE address).
    fn entry(&self, n: usize) -> Option<(u64, u64)> {
        let row = self.rows.get(n.checked_mul(8)?..)?.first_chunk::<8>()?;
        let (loc, fde) = row.split_first_chunk::<4>()?;
        let fde = fde.first_chunk::<4>()?;
        let rel = |b: &[u8; 4]| {
            self.base
                .wrapping_add(i64::from(i32::from_le_bytes(*b)) as u64)
        };
        Some((rel(loc), rel(fde)))
    }

    /// The FDE address of the last entry whose initial location is at most
    /// `pc` (the first entry if there is none, as gimli does).
    fn lookup(&self, pc: u64) -> Option<u64> {
        // Invariant: entries below `lo` start at or below `pc`, entries at or
        // above `hi` start above it.
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            // lo < hi <= count: neither the midpoint nor mid + 1 overflows.
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.0 <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(self.entry(lo.saturating_sub(1))?.1)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// A `.eh_frame_hdr` at `addr` with `eh_frame_ptr` (pcrel|sdata4),
    /// `fde_count` (udata4) and a table in `table_enc` of (loc, fde) pairs,
    /// both given as offsets from `addr`.
    fn hdr(table_enc: u8, rows: &[(i32, i32)]) -> [u8; 12 + 8 * 8] {
        let mut h = [0u8; 12 + 8 * 8];
        h[..4].copy_from_slice(&[1, 0x1b, 0x03, table_enc]);
        h[4..8].copy_from_slice(&0x1000i32.to_le_bytes());
        h[8..12].copy_from_slice(&(rows.len() as u32).to_le_bytes());
        for (i, &(loc, fde)) in rows.iter().enumerate() {
            h[12 + 8 * i..16 + 8 * i].copy_from_slice(&loc.to_le_bytes());
            h[16 + 8 * i..20 + 8 * i].copy_from_slice(&fde.to_le_bytes());
        }
        h
    }

    #[test]
    fn fast_table_lookup_matches_gimli() {
        const ADDR: u64 = 0xffff_8000_0010_0000;
        let rows = [
            (-0x4000, 0x100),
            (-0x3000, 0x200),
            (-0x2ff0, 0x300),
            (-0x100, 0x400),
            (0x10, 0x500),
            (0x2000, 0x600),
            (0x2001, 0x700),
            (0x7000, 0x800),
        ];
        for n in 1..=rows.len() {
            let h = hdr(DATAREL_SDATA4, &rows[..n]);
            let fast = FastTable::new(&h, ADDR, n).expect("usual encoding");
            let bases = BaseAddresses::default().set_eh_frame_hdr(ADDR);
            let parsed = EhFrameHdr::new(&h[..], LittleEndian)
                .parse(&bases, 8)
                .unwrap();
            let table = parsed.table().unwrap();
            for &(loc, _) in &rows {
                for d in [-2i64, -1, 0, 1, 0x800] {
                    let pc = ADDR.wrapping_add_signed(i64::from(loc) + d);
                    let want = table.lookup(pc, &bases).unwrap().direct().unwrap();
                    assert_eq!(fast.lookup(pc), Some(want), "n={n} pc={pc:#x}");
                }
            }
            for (i, e) in table.iter(&bases).enumerate() {
                let (loc, fde) = e.unwrap();
                let want = (loc.direct().unwrap(), fde.direct().unwrap());
                assert_eq!(fast.entry(i), Some(want));
            }
            assert_eq!(fast.entry(n), None);
        }
    }

    #[test]
    fn fast_table_only_for_the_usual_encoding() {
        let h = hdr(DATAREL_SDATA4, &[(0, 0x100), (0x10, 0x200)]);
        assert!(FastTable::new(&h, 0x1000, 2).is_some());
        // udata4 rows, or a count that does not fit the section: gimli's path.
        let h = hdr(0x33, &[(0, 0x100), (0x10, 0x200)]);
        assert!(FastTable::new(&h, 0x1000, 2).is_none());
        let h = hdr(DATAREL_SDATA4, &[(0, 0x100)]);
        assert!(FastTable::new(&h[..20], 0x1000, 2).is_none());
        assert!(FastTable::new(&h, 0x1000, 0).is_none());
        // An 8-byte eh_frame_ptr moves the table.
        let mut h = hdr(DATAREL_SDATA4, &[(0, 0x100)]);
        h[1] = 0x00;
        assert!(FastTable::new(&h, 0x1000, 1).is_none());
    }
}
