//! Host side of the compact table (feature `compile`): evaluates every CFI
//! row of a [`Module`] with gimli and encodes it ([`compile`]), and checks a
//! table against gimli's own evaluation at any address ([`check_row`]).

use crate::module::Module;
use crate::regs::{BY_BIT, bit};
use crate::table::{
    DESC_SIZE, FALLBACK, FLAG_SIGNAL, HEADER_SIZE, K_NONE, K_OFFSET, K_REGISTER, K_SAME,
    K_UNDEFINED, K_VAL_OFFSET, MAX_DESCS, NO_FDE, Row, Rule, TABLE_MAGIC, TABLE_VERSION,
    UnwindTable,
};
use crate::{FixedStorage, Slice};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use gimli::{CfaRule, FrameDescriptionEntry, RegisterRule, UnwindContext, UnwindTableRow, X86_64};

type Ctx = UnwindContext<usize, FixedStorage>;

/// A compiled table and what went into it.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The table (see [`crate::table`] for the layout).
    pub bytes: Vec<u8>,
    /// Rows, the end marker included.
    pub rows: usize,
    /// Rows marked for gimli (a rule the table cannot express, or CFI
    /// gimli itself rejects).
    pub fallback_rows: usize,
    /// Distinct rule descriptors.
    pub descriptors: usize,
}

/// Encodes one rule; `None` if the table cannot express it.
fn encode_rule(rule: &RegisterRule<usize>) -> Option<u16> {
    let scaled = |n: i64| {
        let v = n / 8;
        (n % 8 == 0 && (-2048..2048).contains(&v)).then_some((v as u16) & 0x0fff)
    };
    Some(match *rule {
        RegisterRule::Undefined => K_UNDEFINED << 12,
        RegisterRule::SameValue => K_SAME << 12,
        RegisterRule::Offset(n) => (K_OFFSET << 12) | scaled(n)?,
        RegisterRule::ValOffset(n) => (K_VAL_OFFSET << 12) | scaled(n)?,
        RegisterRule::Register(r) if r.0 <= 16 => (K_REGISTER << 12) | r.0,
        _ => return None,
    })
}

/// Encodes one row as a descriptor; `None` if the table cannot express it.
fn encode_row(
    row: &UnwindTableRow<usize, FixedStorage>,
    fde: &FrameDescriptionEntry<Slice<'_>>,
) -> Option<[u8; DESC_SIZE]> {
    if fde.cie().return_address_register() != X86_64::RA {
        return None;
    }
    let CfaRule::RegisterAndOffset { register, offset } = *row.cfa() else {
        return None;
    };
    let offset = i32::try_from(offset).ok()?;
    let reg = u8::try_from(register.0).ok().filter(|&r| r <= 16)?;
    let mut d = [0u8; DESC_SIZE];
    d[0] = reg;
    d[1] = if fde.is_signal_trampoline() {
        FLAG_SIGNAL
    } else {
        0
    };
    d[4..8].copy_from_slice(&offset.to_le_bytes());
    let mut rules = [K_NONE; BY_BIT.len()];
    for (r, rule) in row.registers() {
        // Untracked registers (vector, flags) never affect a walk.
        let b = bit(*r);
        if b != 0 {
            rules[b.trailing_zeros() as usize] = encode_rule(rule)?;
        }
    }
    let mut mask = 0u16;
    for (i, r) in rules.iter().enumerate() {
        d[8 + 2 * i..10 + 2 * i].copy_from_slice(&r.to_le_bytes());
        if i >= 2 && r >> 12 != K_NONE {
            mask |= 1 << (i - 2);
        }
    }
    d[2..4].copy_from_slice(&mask.to_le_bytes());
    Some(d)
}

/// Rows under construction: (start address, descriptor index).
struct Builder {
    rows: Vec<(u64, u16)>,
    descs: Vec<[u8; DESC_SIZE]>,
    ids: BTreeMap<[u8; DESC_SIZE], u16>,
    too_many: bool,
}

impl Builder {
    /// Starts a row at `start`. A later FDE supersedes the rows of an
    /// earlier one from its own start (the search table picks the last
    /// FDE starting at or below a pc, as the walk does).
    fn push(&mut self, start: u64, d: u16) {
        while self.rows.last().is_some_and(|&(s, _)| s >= start) {
            self.rows.pop();
        }
        if self.rows.last().is_none_or(|&(_, last)| last != d) {
            self.rows.push((start, d));
        }
    }

    fn desc(&mut self, d: [u8; DESC_SIZE]) -> u16 {
        if let Some(&i) = self.ids.get(&d) {
            return i;
        }
        if self.descs.len() >= MAX_DESCS {
            self.too_many = true;
            return FALLBACK;
        }
        let i = self.descs.len() as u16;
        self.descs.push(d);
        self.ids.insert(d, i);
        i
    }

    /// The rows of one FDE, then an end marker.
    fn fde(&mut self, module: &Module<'_>, ctx: &mut Ctx, fde: &FrameDescriptionEntry<Slice<'_>>) {
        let (start, end) = (fde.initial_address(), fde.end_address());
        // An empty FDE still hides the one before it from its start on.
        self.push(start, NO_FDE);
        if end <= start {
            return;
        }
        let mut reached = start;
        match fde.rows(&module.eh_frame, &module.bases, ctx) {
            Ok(mut table) => loop {
                match table.next_row() {
                    Ok(Some(row)) => {
                        let d = encode_row(row, fde).map_or(FALLBACK, |d| self.desc(d));
                        let (s, e) = (row.start_address(), row.end_address());
                        self.push(s, d);
                        reached = e;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.push(reached, FALLBACK);
                        break;
                    }
                }
            },
            Err(_) => self.push(start, FALLBACK),
        }
        self.push(end, NO_FDE);
    }
}

/// Compiles `module`'s CFI into a compact table.
pub fn compile(module: &Module<'_>) -> Result<Compiled, &'static str> {
    let mut ctx: Box<Ctx> = Box::new(UnwindContext::new_in());
    let mut b = Builder {
        rows: Vec::new(),
        descs: Vec::new(),
        ids: BTreeMap::new(),
        too_many: false,
    };
    module.for_each_fde_entry(|fde| b.fde(module, &mut ctx, fde))?;
    if b.too_many {
        return Err("more distinct CFI rows than the table can index");
    }
    let (&(base, _), &(_, last)) = b
        .rows
        .first()
        .zip(b.rows.last())
        .ok_or("no FDEs to compile")?;
    if last != NO_FDE {
        return Err("internal error: rows do not end with the end marker");
    }
    let mut out = Vec::new();
    out.extend_from_slice(&TABLE_MAGIC);
    out.extend_from_slice(&TABLE_VERSION.to_le_bytes());
    out.extend_from_slice(&(b.rows.len() as u32).to_le_bytes());
    out.extend_from_slice(&(b.descs.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_SIZE);
    for &(s, _) in &b.rows {
        let off = u32::try_from(s - base).map_err(|_| "code spans more than 4 GiB")?;
        out.extend_from_slice(&off.to_le_bytes());
    }
    for &(_, d) in &b.rows {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(4), 0);
    for d in &b.descs {
        out.extend_from_slice(d);
    }
    Ok(Compiled {
        rows: b.rows.len(),
        fallback_rows: b.rows.iter().filter(|r| r.1 == FALLBACK).count(),
        descriptors: b.descs.len(),
        bytes: out,
    })
}

/// What [`check_row`] found at one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The table's rules equal gimli's row.
    Same,
    /// Neither has an FDE for the address.
    NoFde,
    /// The table defers to gimli (and gimli's row is indeed not
    /// expressible, or gimli rejects the CFI).
    Fallback,
}

/// Gimli's rule for a tracked register, in the table's terms.
fn gimli_rule(rule: Option<RegisterRule<usize>>) -> Option<Rule> {
    Some(match rule {
        None => Rule::None,
        Some(RegisterRule::Undefined) => Rule::Undefined,
        Some(RegisterRule::SameValue) => Rule::SameValue,
        Some(RegisterRule::Offset(n)) => Rule::Offset(n),
        Some(RegisterRule::ValOffset(n)) => Rule::ValOffset(n),
        Some(RegisterRule::Register(r)) => Rule::Register(r),
        Some(_) => return None,
    })
}

/// Compares the table's row for `pc` with gimli's evaluation of the CFI
/// at `pc` (found and evaluated independently of the table's compiler:
/// the FDE through the search table, the row with
/// `unwind_info_for_address`). `Err` describes a mismatch.
pub fn check_row(module: &Module<'_>, table: &UnwindTable<'_>, pc: u64) -> Result<Verdict, String> {
    let mut ctx: Box<Ctx> = Box::new(UnwindContext::new_in());
    let ours = table.lookup(pc);
    let fde = match module.fde_for(pc) {
        Ok(Some(fde)) => fde,
        Ok(None) => {
            return match ours {
                None | Some(Row::NoFde) => Ok(Verdict::NoFde),
                other => Err(format!("{pc:#x}: gimli has no FDE, table has {other:?}")),
            };
        }
        Err(e) => return Err(format!("{pc:#x}: gimli: {e}")),
    };
    let row = fde.unwind_info_for_address(&module.eh_frame, &module.bases, &mut ctx, pc);
    let (rules, row) = match (ours, row) {
        (Some(Row::Fallback), Err(_)) => return Ok(Verdict::Fallback),
        (Some(Row::Fallback), Ok(row)) => {
            return match encode_row(row, &fde) {
                None => Ok(Verdict::Fallback),
                Some(_) => Err(format!("{pc:#x}: expressible row marked for gimli")),
            };
        }
        (Some(Row::Rules(r)), Ok(row)) => (r, row),
        (other, Err(e)) => return Err(format!("{pc:#x}: gimli: {e}, table has {other:?}")),
        (other, Ok(_)) => return Err(format!("{pc:#x}: gimli has a row, table has {other:?}")),
    };
    let want_cfa = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => (register, offset),
        CfaRule::Expression(_) => return Err(format!("{pc:#x}: CFA expression in the table")),
    };
    if rules.cfa() != want_cfa {
        return Err(format!(
            "{pc:#x}: CFA {:?}, gimli {want_cfa:?}",
            rules.cfa()
        ));
    }
    if rules.is_signal() != fde.is_signal_trampoline() {
        return Err(format!("{pc:#x}: signal-frame flag differs"));
    }
    if fde.cie().return_address_register() != X86_64::RA {
        return Err(format!(
            "{pc:#x}: unusual return-address column in the table"
        ));
    }
    for (reg, rule) in rules.rules() {
        let want: Option<Rule> = gimli_rule(row.register(reg));
        if want != Some(rule) {
            return Err(format!("{pc:#x}: {reg:?}: table {rule:?}, gimli {want:?}"));
        }
    }
    Ok(Verdict::Same)
}
