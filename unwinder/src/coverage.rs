//! How much of `.text` the FDEs cover (the "100% CFI coverage" report).

use crate::{Module, ModuleError};

/// Coverage of a `.text` range by FDEs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Bytes in the `.text` range.
    pub text_bytes: u64,
    /// Bytes inside at least one FDE.
    pub covered_bytes: u64,
    /// Bytes outside every FDE that are only inter-function padding (int3
    /// or NOP fill); known only when the `.text` bytes were given.
    pub padding_bytes: u64,
    /// Bytes outside every FDE that are not padding.
    pub uncovered_bytes: u64,
}

impl Coverage {
    /// Covered code in parts per million of the non-padding bytes
    /// (1_000_000 = 100%). An empty range counts as fully covered.
    pub fn covered_ppm(&self) -> u64 {
        // The fields are public: in u128 neither the sum nor the product
        // can overflow, and the quotient is at most 1_000_000.
        let code = u128::from(self.covered_bytes) + u128::from(self.uncovered_bytes);
        if code == 0 {
            return 1_000_000;
        }
        (u128::from(self.covered_bytes) * 1_000_000 / code) as u64
    }
}

/// Computes FDE coverage of `[text_start, text_end)`. If `text` (the bytes
/// of that range) is given, gaps made only of padding are counted as
/// `padding_bytes`. `gap(start, end, is_padding)` is called for each range
/// not covered by any FDE, in address order.
pub fn coverage(
    module: &Module<'_>,
    text_start: u64,
    text_end: u64,
    text: Option<&[u8]>,
    mut gap: impl FnMut(u64, u64, bool),
) -> Result<Coverage, ModuleError> {
    // An inverted range (from a malformed section header) is empty; it must
    // not reach `clamp`, which panics when its bounds are inverted.
    let text_end = text_end.max(text_start);
    let mut cov = Coverage {
        text_bytes: text_end.saturating_sub(text_start),
        ..Coverage::default()
    };
    let mut cursor = text_start;
    // Below, every difference is of two points clamped to the range with the
    // larger one second, and the byte counts add up disjoint parts of the
    // range: no subtraction wraps and no sum exceeds `text_bytes`.
    let mut on_gap = |start: u64, end: u64, cov: &mut Coverage| {
        let bytes = text.and_then(|t| {
            let lo = usize::try_from(start - text_start).ok()?;
            let hi = usize::try_from(end - text_start).ok()?;
            t.get(lo..hi)
        });
        let pad = bytes.is_some_and(is_padding);
        if pad {
            cov.padding_bytes += end - start;
        } else {
            cov.uncovered_bytes += end - start;
        }
        gap(start, end, pad);
    };
    let mut unsorted = false;
    module.for_each_fde(|start, end| {
        let start = start.clamp(text_start, text_end);
        let end = end.clamp(text_start, text_end);
        if start >= end {
            return;
        }
        if start < cursor && end > cursor {
            cov.covered_bytes += end - cursor;
            cursor = end;
        } else if start >= cursor {
            if start > cursor {
                on_gap(cursor, start, &mut cov);
            }
            cov.covered_bytes += end - start;
            cursor = end;
        } else if end > cursor {
            unsorted = true;
        }
    })?;
    if unsorted {
        return Err(".eh_frame_hdr table is not sorted");
    }
    if cursor < text_end {
        on_gap(cursor, text_end, &mut cov);
    }
    Ok(cov)
}

/// Whether `bytes` is only inter-function fill: `int3` (0xcc) or a sequence
/// of x86 NOP encodings (`90`, `0f 1f /0` with any addressing form, with
/// `66`/`2e` prefixes). An empty slice is padding.
pub fn is_padding(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match nop_len(&bytes[i..]) {
            Some(n) => i += n,
            None => return false,
        }
    }
    true
}

fn nop_len(b: &[u8]) -> Option<usize> {
    if b.first() == Some(&0xcc) {
        return Some(1);
    }
    let mut i = 0;
    while i < 14 && matches!(b.get(i), Some(0x66 | 0x2e)) {
        i += 1;
    }
    match (b.get(i)?, b.get(i + 1)) {
        (0x90, _) => return Some(i + 1),
        (0x0f, Some(0x1f)) => {}
        _ => return None,
    }
    let modrm = *b.get(i + 2)?;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if reg != 0 {
        return None;
    }
    let mut len = i + 3;
    if md != 3 && rm == 4 {
        let sib = *b.get(len)?;
        len += 1;
        if md == 0 && sib & 7 == 5 {
            len += 4;
        }
    }
    len += match (md, rm) {
        (0, 5) => 4,
        (1, _) => 1,
        (2, _) => 4,
        _ => 0,
    };
    (len <= b.len() && len <= 15).then_some(len)
}
