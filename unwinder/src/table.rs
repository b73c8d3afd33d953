//! The compact unwind table: one image's CFI rows, evaluated on the host
//! (see [`crate::compile`]) into fixed-size rule descriptors, searched in
//! place and applied without gimli.
//!
//! Layout (little-endian, position independent; all offsets from the
//! table's first byte):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `SVSMUNWT` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | `rows`: number of row starts (≥ 1) |
//! | 16 | 4 | `descs`: number of rule descriptors (≤ 0xfffd) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | `base`: address of the first row |
//! | 32 | 4 × rows | row starts, offsets from `base`, strictly increasing, the first 0 |
//! | … | 2 × rows | descriptor index per row (or `NO_FDE` / `FALLBACK`) |
//! | … | 0–2 | zero padding to a multiple of 4 |
//! | … | 44 × descs | descriptors |
//!
//! Row `i` covers [`base + start[i]`, `base + start[i+1]`); the last row is
//! always `NO_FDE` and only marks the end of the covered range. A
//! descriptor is: CFA register (DWARF number ≤ 16), flags (bit 0: signal
//! frame), a u16 mask of the registers after rip and rsp that have a rule
//! (bit `i - 2` for validity bit `i`), the CFA offset (i32), then one 16-bit rule per
//! tracked register in validity-bit order (rip, rsp, rbp, rbx, r12–r15,
//! rax, rcx, rdx, rsi, rdi, r8–r11), then 2 reserved bytes. A rule is
//! `kind << 12 | value` with a 12-bit signed value: 0 no rule, 1 undefined,
//! 2 same value, 3 saved at CFA + 8·value, 4 is CFA + 8·value, 5 in
//! register `value`.
//!
//! [`UnwindTable::parse`] checks all of that once; lookups still read
//! through bounds checks, so no input makes them panic.

use crate::frame::{Memory, StopReason};
use crate::regs::{BY_BIT, RESTORED, Regs, VALID_CALLER_SAVED, bit};
use crate::walk::{RowSource, Step, StepResult};
use gimli::{Register, X86_64};

pub const TABLE_MAGIC: [u8; 8] = *b"SVSMUNWT";
pub const TABLE_VERSION: u32 = 1;
pub(crate) const HEADER_SIZE: usize = 32;
pub(crate) const DESC_SIZE: usize = 44;
/// Row index: no FDE covers these addresses.
pub(crate) const NO_FDE: u16 = 0xffff;
/// Row index: the table cannot express this row; evaluate the CFI.
pub(crate) const FALLBACK: u16 = 0xfffe;
/// Largest descriptor count (the indexes below the two markers).
pub(crate) const MAX_DESCS: usize = 0xfffd;
/// Number of tracked registers, one rule each per descriptor.
pub(crate) const NRULES: usize = 17;
/// Descriptor flag: the FDE's CIE has the `S` augmentation.
pub(crate) const FLAG_SIGNAL: u8 = 1;

/// Rule kinds (the top 4 bits of a 16-bit rule).
pub(crate) const K_NONE: u16 = 0;
pub(crate) const K_UNDEFINED: u16 = 1;
pub(crate) const K_SAME: u16 = 2;
pub(crate) const K_OFFSET: u16 = 3;
pub(crate) const K_VAL_OFFSET: u16 = 4;
pub(crate) const K_REGISTER: u16 = 5;

/// A parsed, validated compact table borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct UnwindTable<'a> {
    starts: &'a [[u8; 4]],
    index: &'a [[u8; 2]],
    descs: &'a [[u8; DESC_SIZE]],
    base: u64,
    end: u64,
}

/// What a table says about one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row<'a> {
    /// The rules of the row.
    Rules(Rules<'a>),
    /// No FDE covers the address.
    NoFde,
    /// The table cannot express this row; gimli must evaluate the CFI.
    Fallback,
}

/// One rule descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules<'a>(&'a [u8; DESC_SIZE]);

/// A register rule as the table encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No rule for the register (the ABI default applies).
    None,
    Undefined,
    SameValue,
    /// Saved at CFA + n.
    Offset(i64),
    /// The value is CFA + n.
    ValOffset(i64),
    /// Held in another register.
    Register(Register),
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

/// `b` as whole `N`-byte chunks; `None` unless it divides evenly.
fn chunks<const N: usize>(b: &[u8]) -> Option<&[[u8; N]]> {
    let (whole, rest) = b.as_chunks::<N>();
    rest.is_empty().then_some(whole)
}

/// Decodes a 16-bit rule; `None` for an unknown kind or register.
pub(crate) fn decode_rule(r: u16) -> Option<Rule> {
    // Sign-extend the low 12 bits.
    let v = i64::from(((r << 4) as i16) >> 4);
    Some(match r >> 12 {
        K_NONE => Rule::None,
        K_UNDEFINED => Rule::Undefined,
        K_SAME => Rule::SameValue,
        // |v| < 2^11: no overflow (wrapping keeps overflow checks, and so
        // panic edges, off the fault path).
        K_OFFSET => Rule::Offset(v.wrapping_mul(8)),
        K_VAL_OFFSET => Rule::ValOffset(v.wrapping_mul(8)),
        K_REGISTER if (0..=16).contains(&v) => Rule::Register(Register(v as u16)),
        _ => return None,
    })
}

impl<'a> UnwindTable<'a> {
    /// Parses and validates a table; lookups on the result never fail on
    /// its structure.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let magic = bytes.first_chunk::<8>().ok_or("unwind table truncated")?;
        if *magic != TABLE_MAGIC {
            return Err("bad unwind table magic");
        }
        let field = |at| u32_at(bytes, at).ok_or("unwind table truncated");
        if field(8)? != TABLE_VERSION {
            return Err("unwind table version mismatch");
        }
        let rows = field(12)? as usize;
        let ndescs = field(16)? as usize;
        let base = bytes
            .get(24..32)
            .and_then(|b| b.first_chunk::<8>())
            .map(|b| u64::from_le_bytes(*b))
            .ok_or("unwind table truncated")?;
        if rows == 0 {
            return Err("unwind table has no rows");
        }
        if ndescs > MAX_DESCS {
            return Err("unwind table has too many descriptors");
        }
        // The counts come from the file: checked, so that a count near the
        // top of a 32-bit usize is "truncated", not an overflow.
        let too_big = "unwind table truncated";
        let index_at = rows
            .checked_mul(4)
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .ok_or(too_big)?;
        let index_end = rows
            .checked_mul(2)
            .and_then(|n| n.checked_add(index_at))
            .ok_or(too_big)?;
        let descs_at = index_end.checked_next_multiple_of(4).ok_or(too_big)?;
        // ndescs <= MAX_DESCS: the product is small.
        let descs_end = descs_at.checked_add(ndescs * DESC_SIZE).ok_or(too_big)?;
        let part = |from: usize, to: usize| bytes.get(from..to).ok_or("unwind table truncated");
        let t = UnwindTable {
            starts: chunks(part(HEADER_SIZE, index_at)?).ok_or("unwind rows malformed")?,
            index: chunks(part(index_at, index_end)?).ok_or("unwind rows malformed")?,
            descs: chunks(part(descs_at, descs_end)?).ok_or("unwind descriptors malformed")?,
            base,
            end: base,
        };
        if bytes.len() != descs_end {
            return Err("unwind table has trailing bytes");
        }
        t.validate(rows, ndescs)
    }

    fn validate(mut self, rows: usize, ndescs: usize) -> Result<Self, &'static str> {
        let mut prev = None;
        for i in 0..rows {
            let s = self.start(i).ok_or("unwind rows out of bounds")?;
            if prev.is_none() && s != 0 {
                return Err("first unwind row does not start at the base");
            }
            if prev.is_some_and(|p| p >= s) {
                return Err("unwind rows not strictly increasing");
            }
            prev = Some(s);
            let d = self.desc_index(i).ok_or("unwind rows out of bounds")?;
            if d != NO_FDE && d != FALLBACK && usize::from(d) >= ndescs {
                return Err("unwind row names a missing descriptor");
            }
            if i + 1 == rows && d != NO_FDE {
                return Err("last unwind row is not the end marker");
            }
        }
        self.end = self
            .base
            .checked_add(u64::from(prev.unwrap_or(0)))
            .ok_or("unwind table range overflows")?;
        for d in self.descs {
            if d[0] > 16 {
                return Err("unwind descriptor has a bad CFA register");
            }
            let mut mask = 0u16;
            for k in 0..NRULES {
                let r = Rules(d).raw_rule(k);
                decode_rule(r).ok_or("unwind descriptor has a bad rule")?;
                if k >= 2 && r >> 12 != K_NONE {
                    mask |= 1 << (k - 2);
                }
            }
            if Rules(d).mask() != mask {
                return Err("unwind descriptor has a wrong rule mask");
            }
        }
        Ok(self)
    }

    /// The covered range [start, end).
    pub fn pc_range(&self) -> (u64, u64) {
        (self.base, self.end)
    }

    /// Number of rows (the end marker included).
    pub fn rows(&self) -> usize {
        self.index.len()
    }

    /// Number of distinct rule descriptors.
    pub fn descriptors(&self) -> usize {
        self.descs.len()
    }

    /// Offset of row `i` from the base.
    #[inline]
    fn start(&self, i: usize) -> Option<u32> {
        self.starts.get(i).map(|b| u32::from_le_bytes(*b))
    }

    #[inline]
    fn desc_index(&self, i: usize) -> Option<u16> {
        self.index.get(i).map(|b| u16::from_le_bytes(*b))
    }

    /// The start address and the entry of row `i`.
    pub fn row(&self, i: usize) -> Option<(u64, Row<'a>)> {
        let start = self.base.wrapping_add(u64::from(self.start(i)?));
        let row = match self.desc_index(i)? {
            NO_FDE => Row::NoFde,
            FALLBACK => Row::Fallback,
            d => Row::Rules(Rules(self.descs.get(usize::from(d))?)),
        };
        Some((start, row))
    }

    /// The row covering `pc`; `None` outside [`Self::pc_range`].
    #[inline]
    pub fn lookup(&self, pc: u64) -> Option<Row<'a>> {
        if pc < self.base || pc >= self.end {
            return None;
        }
        // In range: the offset fits the u32 starts. (The wrapping
        // arithmetic here cannot wrap; it keeps the fault path free of
        // overflow checks, hence of panic edges.)
        let off = pc.wrapping_sub(self.base) as u32;
        // Invariant: rows below `lo` start at or below `off`, rows at or
        // above `hi` above it; row 0 starts at 0, so `lo` ends ≥ 1.
        let (mut lo, mut hi) = (0usize, self.rows());
        while lo < hi {
            let mid = lo.wrapping_add(hi.wrapping_sub(lo) / 2);
            if self.start(mid)? <= off {
                lo = mid.wrapping_add(1);
            } else {
                hi = mid;
            }
        }
        Some(self.row(lo.checked_sub(1)?)?.1)
    }
}

impl Rules<'_> {
    /// The CFA register and offset.
    pub fn cfa(&self) -> (Register, i64) {
        let b = self.0;
        let off = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        (Register(u16::from(b[0])), i64::from(off))
    }

    /// Which registers after rip and rsp have a rule (bit `i - 2` for
    /// validity bit `i`); checked against the rules by `parse`.
    #[inline]
    fn mask(&self) -> u16 {
        u16::from_le_bytes([self.0[2], self.0[3]])
    }

    /// Whether the row's CIE is a signal frame (an exception entry stub).
    pub fn is_signal(&self) -> bool {
        self.0[1] & FLAG_SIGNAL != 0
    }

    /// The encoded rule of the `i`th register in validity-bit order.
    #[inline]
    fn raw_rule(&self, i: usize) -> u16 {
        let at = i.wrapping_mul(2).wrapping_add(8);
        match (self.0.get(at), self.0.get(at.wrapping_add(1))) {
            (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
            _ => K_UNDEFINED << 12,
        }
    }

    /// The rule of the `i`th register in validity-bit order.
    #[inline]
    fn rule_at(&self, i: usize) -> Rule {
        decode_rule(self.raw_rule(i)).unwrap_or(Rule::Undefined)
    }

    /// The rule for a DWARF register; [`Rule::None`] for untracked ones.
    pub fn rule(&self, reg: Register) -> Rule {
        let b = bit(reg);
        if b == 0 {
            return Rule::None;
        }
        self.rule_at(b.trailing_zeros() as usize)
    }

    /// Applies the row to the callee's registers: the same semantics as
    /// the gimli path (docs/unwinder.md, Registers), checked against it at
    /// every instruction of the kernel by the differential test.
    pub fn step<M: Memory + ?Sized>(
        &self,
        mem: &M,
        regs: &Regs,
        valid: u32,
        caller: &mut Regs,
    ) -> StepResult {
        let known = |reg: Register| -> Result<u64, StopReason> {
            match regs.get(reg) {
                Some(v) if valid & bit(reg) != 0 => Ok(v),
                _ => Err(StopReason::BadCfi),
            }
        };
        let apply = |reg: Register, rule: Rule, cfa: u64| -> Result<Option<u64>, StopReason> {
            Ok(Some(match rule {
                Rule::None | Rule::Undefined => return Ok(None),
                Rule::SameValue => return Ok(regs.get(reg).filter(|_| valid & bit(reg) != 0)),
                Rule::Offset(n) => mem
                    .read_u64(cfa.wrapping_add_signed(n))
                    .ok_or(StopReason::BadMemory)?,
                Rule::ValOffset(n) => cfa.wrapping_add_signed(n),
                Rule::Register(r) => known(r)?,
            }))
        };
        let (cfa_reg, cfa_off) = self.cfa();
        let cfa = known(cfa_reg)
            .map_err(|e| (None, e))?
            .wrapping_add_signed(cfa_off);
        let signal = self.is_signal();
        let fail = |e| (Some(cfa), e);
        let ra = match self.rule_at(0) {
            Rule::None | Rule::Undefined => {
                return Ok(Step {
                    cfa,
                    signal,
                    caller_valid: None,
                });
            }
            rule => apply(X86_64::RA, rule, cfa)
                .map_err(fail)?
                .ok_or((Some(cfa), StopReason::BadCfi))?,
        };
        *caller = *regs;
        let mut caller_valid = (valid & !VALID_CALLER_SAVED) | bit(X86_64::RA) | bit(X86_64::RSP);
        caller.rip = ra;
        caller.rsp = match self.rule_at(1) {
            Rule::None => cfa,
            rule => apply(X86_64::RSP, rule, cfa)
                .map_err(fail)?
                .ok_or((Some(cfa), StopReason::BadCfi))?,
        };
        // Only the registers that have a rule (usually a few of the 15).
        let mut mask = self.mask();
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask.wrapping_sub(1);
            let Some(&reg) = RESTORED.get(i) else {
                break;
            };
            let rule = self.rule_at(i.wrapping_add(2));
            match apply(reg, rule, cfa).map_err(fail)? {
                Some(v) => {
                    if let Some(slot) = caller.slot(reg) {
                        *slot = v;
                    }
                    caller_valid |= bit(reg);
                }
                None => caller_valid &= !bit(reg),
            }
        }
        caller.clear_unknown(caller_valid);
        Ok(Step {
            cfa,
            signal,
            caller_valid: Some(caller_valid),
        })
    }

    /// The rules of all tracked registers, in validity-bit order with
    /// their DWARF register.
    pub fn rules(&self) -> impl Iterator<Item = (Register, Rule)> + '_ {
        BY_BIT
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, self.rule_at(i)))
    }
}

/// The rows of a walk that reads compact tables only (no gimli code
/// reachable): [`crate::Walk::from_tables`].
#[derive(Clone, Copy, Debug)]
pub struct TableRows<'w> {
    tables: &'w [UnwindTable<'w>],
}

impl<'w> TableRows<'w> {
    pub(crate) fn new(tables: &'w [UnwindTable<'w>]) -> Self {
        TableRows { tables }
    }
}

impl RowSource for TableRows<'_> {
    #[inline]
    fn step<M: Memory + ?Sized>(
        &mut self,
        mem: &M,
        lookup_pc: u64,
        regs: &Regs,
        valid: u32,
        caller: &mut Regs,
    ) -> StepResult {
        let row = self
            .tables
            .iter()
            .find_map(|t| t.lookup(lookup_pc))
            .unwrap_or(Row::NoFde);
        match row {
            Row::Rules(r) => r.step(mem, regs, valid, caller),
            Row::NoFde => Err((None, StopReason::NoFde)),
            Row::Fallback => Err((None, StopReason::BadCfi)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A table at 0x1000: [0x1000, 0x1010) rules `d`, [0x1010, 0x1020)
    /// fallback, [0x1020, 0x1030) no FDE, [0x1030, 0x1040) rules `d`, end.
    fn table(d: [u8; DESC_SIZE]) -> Vec<u8> {
        let rows: [(u32, u16); 5] = [
            (0, 0),
            (0x10, FALLBACK),
            (0x20, NO_FDE),
            (0x30, 0),
            (0x40, NO_FDE),
        ];
        let mut b = Vec::new();
        b.extend_from_slice(&TABLE_MAGIC);
        b.extend_from_slice(&TABLE_VERSION.to_le_bytes());
        b.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0x1000u64.to_le_bytes());
        rows.iter()
            .for_each(|r| b.extend_from_slice(&r.0.to_le_bytes()));
        rows.iter()
            .for_each(|r| b.extend_from_slice(&r.1.to_le_bytes()));
        b.resize(b.len().next_multiple_of(4), 0);
        b.extend_from_slice(&d);
        b
    }

    /// CFA = rsp + 16, rip at CFA - 8, rbp at CFA - 16, rax undefined,
    /// rbx in r12.
    fn desc() -> [u8; DESC_SIZE] {
        let mut d = [0u8; DESC_SIZE];
        d[0] = 7;
        d[4..8].copy_from_slice(&16i32.to_le_bytes());
        let mut set = |i: usize, r: u16| d[8 + 2 * i..10 + 2 * i].copy_from_slice(&r.to_le_bytes());
        set(0, K_OFFSET << 12 | 0xfff); // -1 * 8
        set(2, K_OFFSET << 12 | 0xffe); // rbp: -2 * 8
        set(3, K_REGISTER << 12 | 12); // rbx = r12
        set(8, K_UNDEFINED << 12); // rax
        let mask: u16 = (1 << 0) | (1 << 1) | (1 << 6);
        d[2..4].copy_from_slice(&mask.to_le_bytes());
        d
    }

    struct Mem;
    impl Memory for Mem {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            (addr >= 0x8000).then_some(addr * 2)
        }
    }

    #[test]
    fn lookup_covers_rows_gaps_and_ends() {
        let b = table(desc());
        let t = UnwindTable::parse(&b).unwrap();
        assert_eq!(t.pc_range(), (0x1000, 0x1040));
        assert_eq!((t.rows(), t.descriptors()), (5, 1));
        assert_eq!(t.lookup(0xfff), None);
        assert!(matches!(t.lookup(0x1000), Some(Row::Rules(_))));
        assert!(matches!(t.lookup(0x100f), Some(Row::Rules(_))));
        assert_eq!(t.lookup(0x1010), Some(Row::Fallback));
        assert_eq!(t.lookup(0x102f), Some(Row::NoFde));
        assert!(matches!(t.lookup(0x103f), Some(Row::Rules(_))));
        assert_eq!(t.lookup(0x1040), None);
        assert_eq!(t.lookup(u64::MAX), None);
    }

    #[test]
    fn step_applies_each_rule_kind() {
        let b = table(desc());
        let t = UnwindTable::parse(&b).unwrap();
        let Some(Row::Rules(r)) = t.lookup(0x1000) else {
            panic!()
        };
        assert_eq!(r.rule(X86_64::RBP), Rule::Offset(-16));
        assert_eq!(r.rule(X86_64::XMM0), Rule::None);
        let regs = Regs {
            rip: 0x1000,
            rsp: 0x9000,
            rbp: 1,
            rbx: 2,
            r12: 3,
            r13: 4,
            rax: 5,
            ..Default::default()
        };
        let mut caller = Regs::default();
        let step = r.step(&Mem, &regs, crate::VALID_ALL, &mut caller).unwrap();
        assert_eq!(step.cfa, 0x9010);
        assert!(!step.signal);
        let valid = step.caller_valid.unwrap();
        assert_eq!(caller.rip, 0x9008 * 2);
        assert_eq!(caller.rsp, 0x9010);
        assert_eq!(caller.rbp, 0x9000 * 2);
        assert_eq!(caller.rbx, 3);
        assert_eq!(caller.r13, 4, "callee-saved without a rule keeps its value");
        assert_eq!(caller.rax, 0, "undefined");
        assert_eq!(valid & bit(X86_64::RAX), 0);
        assert_eq!(caller.rcx, 0);
        // r12 unknown: the rbx rule fails; rsp unknown: the CFA fails.
        let v = crate::VALID_ALL & !bit(X86_64::R12);
        assert_eq!(
            r.step(&Mem, &regs, v, &mut caller),
            Err((Some(0x9010), StopReason::BadCfi))
        );
        let v = crate::VALID_ALL & !bit(X86_64::RSP);
        assert_eq!(
            r.step(&Mem, &regs, v, &mut caller),
            Err((None, StopReason::BadCfi))
        );
        // A refused read.
        let low = Regs { rsp: 0x100, ..regs };
        assert_eq!(
            r.step(&Mem, &low, crate::VALID_ALL, &mut caller),
            Err((Some(0x110), StopReason::BadMemory))
        );
    }

    #[test]
    fn parse_names_each_problem() {
        let good = table(desc());
        assert!(UnwindTable::parse(&good).is_ok());
        let bad = |f: &dyn Fn(&mut Vec<u8>), want: &str| {
            let mut b = good.clone();
            f(&mut b);
            assert_eq!(UnwindTable::parse(&b).unwrap_err(), want);
        };
        bad(&|b| b[0] = b'X', "bad unwind table magic");
        bad(&|b| b[8] = 9, "unwind table version mismatch");
        bad(&|b| b.truncate(20), "unwind table truncated");
        bad(&|b| b.push(0), "unwind table has trailing bytes");
        bad(
            &|b| b[12..16].copy_from_slice(&0u32.to_le_bytes()),
            "unwind table has no rows",
        );
        bad(
            &|b| b[32..36].copy_from_slice(&1u32.to_le_bytes()),
            "first unwind row does not start at the base",
        );
        bad(
            &|b| b[36..40].copy_from_slice(&0x30u32.to_le_bytes()),
            "unwind rows not strictly increasing",
        );
        bad(
            &|b| b[52..54].copy_from_slice(&7u16.to_le_bytes()),
            "unwind row names a missing descriptor",
        );
        bad(
            &|b| b[60..62].copy_from_slice(&0u16.to_le_bytes()),
            "last unwind row is not the end marker",
        );
        bad(&|b| b[64] = 17, "unwind descriptor has a bad CFA register");
        bad(
            &|b| b[64 + 8 + 1] = 0x70,
            "unwind descriptor has a bad rule",
        );
        bad(
            &|b| b[64 + 2] = 0,
            "unwind descriptor has a wrong rule mask",
        );
    }
}
