//! Hand-made CFI blobs (`.eh_frame` + `.eh_frame_hdr`) and a sparse fake
//! memory, for tests that model kernel-like frames precisely.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use gimli::write::{
    Address, CallFrameInstruction as I, CommonInformationEntry, EhFrame, EndianVec,
    FrameDescriptionEntry, FrameTable,
};
use gimli::{Encoding, Format, LittleEndian, UnwindSection, X86_64};
use svsm_unwinder::{CfiSections, Memory};

pub const EH_FRAME_ADDR: u64 = 0x10_0000;
pub const EH_FRAME_HDR_ADDR: u64 = 0x20_0000;

/// One function: [start, start+len), whether its CIE is a signal frame,
/// and its CFI program as (offset, instruction).
pub struct Func {
    pub start: u64,
    pub len: u32,
    pub signal: bool,
    pub insns: Vec<(u32, I)>,
}

pub struct Blob {
    pub eh_frame: Vec<u8>,
    pub eh_frame_hdr: Vec<u8>,
}

impl Blob {
    pub fn sections(&self) -> CfiSections<'_> {
        CfiSections {
            eh_frame_hdr: &self.eh_frame_hdr,
            eh_frame_hdr_addr: EH_FRAME_HDR_ADDR,
            eh_frame: &self.eh_frame,
            eh_frame_addr: EH_FRAME_ADDR,
        }
    }
}

fn cie(signal: bool) -> CommonInformationEntry {
    let enc = Encoding {
        format: Format::Dwarf32,
        version: 1,
        address_size: 8,
    };
    let mut cie = CommonInformationEntry::new(enc, 1, -8, X86_64::RA);
    // The x86_64 CIE every compiler emits: CFA = rsp+8, ra at CFA-8.
    cie.add_instruction(I::Cfa(X86_64::RSP, 8));
    cie.add_instruction(I::Offset(X86_64::RA, -8));
    cie.signal_trampoline = signal;
    cie
}

/// Builds `.eh_frame` and a `.eh_frame_hdr` with a sorted search table
/// (datarel|sdata4 entries, as the linkers emit).
pub fn build(funcs: &[Func]) -> Blob {
    let mut table = FrameTable::default();
    let normal = table.add_cie(cie(false));
    let signal = table.add_cie(cie(true));
    for f in funcs {
        let mut fde = FrameDescriptionEntry::new(Address::Constant(f.start), f.len);
        for (off, insn) in &f.insns {
            fde.add_instruction(*off, insn.clone());
        }
        table.add_fde(if f.signal { signal } else { normal }, fde);
    }
    let mut eh = EhFrame(EndianVec::new(LittleEndian));
    table.write_eh_frame(&mut eh).expect("write .eh_frame");
    let mut eh_frame = eh.0.into_vec();
    eh_frame.extend_from_slice(&[0; 4]); // terminator

    // Find the FDEs' offsets by parsing what was written.
    let bases = gimli::BaseAddresses::default().set_eh_frame(EH_FRAME_ADDR);
    let parsed = gimli::EhFrame::new(&eh_frame, LittleEndian);
    let mut entries = parsed.entries(&bases);
    let mut rows = Vec::new();
    while let Some(e) = entries.next().expect("parse written .eh_frame") {
        if let gimli::CieOrFde::Fde(partial) = e {
            let off = partial.offset() as u64;
            let fde = partial
                .parse(gimli::EhFrame::cie_from_offset)
                .expect("parse FDE");
            rows.push((fde.initial_address(), EH_FRAME_ADDR + off));
        }
    }
    rows.sort();
    let mut hdr = vec![1u8, 0x04, 0x03, 0x3b];
    hdr.extend_from_slice(&EH_FRAME_ADDR.to_le_bytes());
    hdr.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for (loc, fde) in rows {
        let rel = |a: u64| (a.wrapping_sub(EH_FRAME_HDR_ADDR) as i64 as i32).to_le_bytes();
        hdr.extend_from_slice(&rel(loc));
        hdr.extend_from_slice(&rel(fde));
    }
    Blob {
        eh_frame,
        eh_frame_hdr: hdr,
    }
}

/// Sparse 64-bit memory with allowed ranges; records every read request.
#[derive(Default)]
pub struct FakeMem {
    pub words: BTreeMap<u64, u64>,
    pub ranges: Vec<(u64, u64)>,
    pub reads: RefCell<Vec<(u64, bool)>>,
    /// Known stacks as (lo, hi, id) for `Memory::stack_id`; empty: unknown.
    pub stacks: Vec<(u64, u64, u64)>,
}

impl FakeMem {
    pub fn allowed(&self, addr: u64) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| addr >= lo && addr.checked_add(8).is_some_and(|e| e <= hi))
    }
    pub fn set(&mut self, addr: u64, v: u64) {
        self.words.insert(addr, v);
    }
}

impl Memory for FakeMem {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let ok = self.allowed(addr);
        self.reads.borrow_mut().push((addr, ok));
        ok.then(|| self.words.get(&addr).copied().unwrap_or(0))
    }

    fn stack_id(&self, addr: u64) -> Option<u64> {
        self.stacks
            .iter()
            .find(|&&(lo, hi, _)| addr >= lo && addr < hi)
            .map(|s| s.2)
    }
}
