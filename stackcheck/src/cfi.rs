//! Frame sizes from call-frame information (.eh_frame / .debug_frame).

use anyhow::Result;
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian,
    UnwindContext, UnwindSection, X86_64,
};
use object::{Object, ObjectSection};

use crate::bail_input;
use crate::elf::Image;

/// CFI summary of one FDE.
#[derive(Debug, Clone)]
pub struct FdeInfo {
    pub start: u64,
    pub end: u64,
    /// Largest CFA offset while the CFA is rsp-based (includes the return address).
    pub max_rsp_offset: u64,
    /// CFA switches to another register (frame pointer) or an expression somewhere:
    /// the rsp offset no longer describes the frame after that point.
    pub not_rsp_based: bool,
    /// Rows: (start, end, Some(rsp offset) or None when not rsp-based).
    pub rows: Vec<(u64, u64, Option<u64>)>,
}

impl FdeInfo {
    /// Stack depth (CFA offset) at `pc`, when rsp-based there.
    pub fn depth_at(&self, pc: u64) -> Option<u64> {
        let i = self.rows.partition_point(|r| r.0 <= pc);
        if i == 0 {
            return None;
        }
        let r = self.rows[i - 1];
        if pc < r.1 { r.2 } else { None }
    }
}

/// All FDEs, sorted by start address.
#[derive(Debug, Default)]
pub struct Cfi {
    pub fdes: Vec<FdeInfo>,
}

impl Cfi {
    pub fn parse(img: &Image<'_>) -> Result<Self> {
        let mut fdes = Vec::new();
        let text = img
            .file
            .section_by_name(".text")
            .map(|s| s.address())
            .unwrap_or(0);
        if let Some(sec) = img.file.section_by_name(".eh_frame") {
            let data = match sec.data() {
                Ok(d) => d,
                Err(e) => bail_input!("corrupt ELF: .eh_frame: {e}"),
            };
            let mut eh = EhFrame::new(data, LittleEndian);
            eh.set_address_size(8);
            let bases = BaseAddresses::default()
                .set_eh_frame(sec.address())
                .set_text(text);
            if let Err(e) = collect(&eh, &bases, &mut fdes) {
                bail_input!("corrupt .eh_frame: {e}");
            }
        }
        if let Some(sec) = img.file.section_by_name(".debug_frame") {
            let data = match sec.data() {
                Ok(d) => d,
                Err(e) => bail_input!("corrupt ELF: .debug_frame: {e}"),
            };
            let mut df = DebugFrame::new(data, LittleEndian);
            df.set_address_size(8);
            let bases = BaseAddresses::default().set_text(text);
            if let Err(e) = collect(&df, &bases, &mut fdes) {
                bail_input!("corrupt .debug_frame: {e}");
            }
        }
        fdes.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        fdes.dedup_by_key(|f| f.start);
        Ok(Cfi { fdes })
    }

    /// FDE covering `addr`.
    pub fn fde_for(&self, addr: u64) -> Option<&FdeInfo> {
        let i = self.fdes.partition_point(|f| f.start <= addr);
        if i == 0 {
            return None;
        }
        let f = &self.fdes[i - 1];
        (addr < f.end).then_some(f)
    }

    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.fdes.iter().map(|f| (f.start, f.end)).collect()
    }
}

fn collect<'a, S>(section: &S, bases: &BaseAddresses, out: &mut Vec<FdeInfo>) -> gimli::Result<()>
where
    S: UnwindSection<EndianSlice<'a, LittleEndian>>,
{
    // The unwind context holds register rule stacks: keep it on the heap.
    let mut ctx = Box::new(UnwindContext::new());
    let mut entries = section.entries(bases);
    while let Some(entry) = entries.next()? {
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let fde = partial.parse(S::cie_from_offset)?;
        if fde.len() == 0 {
            continue;
        }
        let mut info = FdeInfo {
            start: fde.initial_address(),
            end: fde.end_address(),
            max_rsp_offset: 0,
            not_rsp_based: false,
            rows: Vec::new(),
        };
        let mut table = fde.rows(section, bases, &mut ctx)?;
        while let Some(row) = table.next_row()? {
            let off = match row.cfa() {
                CfaRule::RegisterAndOffset { register, offset }
                    if *register == X86_64::RSP && *offset >= 0 =>
                {
                    Some(*offset as u64)
                }
                _ => None,
            };
            match off {
                Some(o) => info.max_rsp_offset = info.max_rsp_offset.max(o),
                None => info.not_rsp_based = true,
            }
            info.rows
                .push((row.start_address(), row.end_address(), off));
        }
        out.push(info);
    }
    Ok(())
}
