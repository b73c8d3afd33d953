//! Compact kernel symbol table, embedded into the image by igvm-build and
//! read by the kernel to print `name+offset` in backtraces.
//!
//! Little-endian and position independent (every offset is relative to the
//! start of the table), so it can be mapped anywhere:
//!
//! ```text
//! Header (32 bytes)
//!   magic        [u8; 8]  "SVSMSYMS"
//!   version      u32      SYMTAB_VERSION
//!   count        u32      number of entries
//!   entries_off  u32      offset of the entry array (>= 32)
//!   strings_off  u32      offset of the string blob
//!   strings_len  u32      length of the string blob
//!   reserved     u32      0
//! Entry (16 bytes each), sorted by strictly increasing addr
//!   addr         u64      symbol start (virtual)
//!   size         u32      symbol size; 0 = unknown, extends to the next symbol
//!   name_off     u32      offset of the name in the string blob
//! String blob: UTF-8 names, each terminated by NUL; names may be shared.
//! ```
//!
//! Names are stored as given: igvm-build passes names demangled without the
//! hash (`format!("{:#}", rustc_demangle::demangle(raw))`).
//!
//! [`SymTab::parse`] validates the whole table once (bounds, order, string
//! termination, UTF-8) without copying or allocating; [`SymTab::lookup`] is a
//! binary search. Neither panics on any input.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

#[cfg(all(test, not(feature = "alloc")))]
extern crate alloc;

/// `Header::magic`.
pub const SYMTAB_MAGIC: [u8; 8] = *b"SVSMSYMS";
/// Bumped whenever the layout changes.
pub const SYMTAB_VERSION: u32 = 1;

/// The table header.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: U32,
    pub count: U32,
    pub entries_off: U32,
    pub strings_off: U32,
    pub strings_len: U32,
    pub reserved: U32,
}

/// One symbol.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct Entry {
    pub addr: U64,
    pub size: U32,
    pub name_off: U32,
}

const HEADER_SIZE: usize = core::mem::size_of::<Header>();
const ENTRY_SIZE: usize = core::mem::size_of::<Entry>();

/// A validated, zero-copy view of a symbol table.
#[derive(Clone, Copy, Debug)]
pub struct SymTab<'a> {
    entries: &'a [Entry],
    strings: &'a str,
}

impl<'a> SymTab<'a> {
    /// Validates `data` and returns a view of it; the error names the
    /// problem.
    pub fn parse(data: &'a [u8]) -> Result<Self, &'static str> {
        let (hdr, _) = Header::ref_from_prefix(data).map_err(|_| "symbol table truncated")?;
        if hdr.magic != SYMTAB_MAGIC {
            return Err("bad symbol table magic");
        }
        if hdr.version.get() != SYMTAB_VERSION {
            return Err("symbol table version mismatch");
        }
        let count = hdr.count.get() as usize;
        let entries_off = hdr.entries_off.get() as usize;
        if entries_off < HEADER_SIZE {
            return Err("symbol entries overlap the header");
        }
        let entries_bytes = count
            .checked_mul(ENTRY_SIZE)
            .and_then(|n| data.get(entries_off..entries_off.checked_add(n)?))
            .ok_or("symbol entries out of bounds")?;
        let entries =
            <[Entry]>::ref_from_bytes(entries_bytes).map_err(|_| "symbol entries malformed")?;
        let strings_off = hdr.strings_off.get() as usize;
        let strings_len = hdr.strings_len.get() as usize;
        let strings = strings_off
            .checked_add(strings_len)
            .and_then(|end| data.get(strings_off..end))
            .ok_or("symbol strings out of bounds")?;
        let strings = core::str::from_utf8(strings).map_err(|_| "symbol strings not UTF-8")?;

        let mut prev: Option<u64> = None;
        for e in entries {
            let addr = e.addr.get();
            if prev.is_some_and(|p| p >= addr) {
                return Err("symbols not sorted by address");
            }
            prev = Some(addr);
            if name_at(strings, e.name_off.get()).is_none() {
                return Err("symbol name out of bounds or unterminated");
            }
        }
        Ok(SymTab { entries, strings })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`th symbol (in address order): (addr, size, name).
    pub fn get(&self, i: usize) -> Option<(u64, u32, &'a str)> {
        let e = self.entries.get(i)?;
        Some((
            e.addr.get(),
            e.size.get(),
            name_at(self.strings, e.name_off.get())?,
        ))
    }

    /// The symbol containing `addr` and the offset of `addr` in it. A
    /// symbol of size 0 extends to the next symbol (the last one then
    /// matches only its own address).
    pub fn lookup(&self, addr: u64) -> Option<(&'a str, u64)> {
        let idx = self.entries.partition_point(|e| e.addr.get() <= addr);
        let i = idx.checked_sub(1)?;
        let e = self.entries.get(i)?;
        let start = e.addr.get();
        let end = match e.size.get() {
            0 => self
                .entries
                .get(idx)
                .map_or(start.saturating_add(1), |n| n.addr.get()),
            size => start.saturating_add(u64::from(size)),
        };
        if addr >= end {
            return None;
        }
        Some((name_at(self.strings, e.name_off.get())?, addr - start))
    }
}

/// The NUL-terminated name at `off`, if in bounds, terminated and starting
/// on a character boundary.
fn name_at(strings: &str, off: u32) -> Option<&str> {
    let off = usize::try_from(off).ok()?;
    let rest = strings.get(off..)?;
    let end = rest.find('\0')?;
    rest.get(..end)
}

/// Builds a table from (addr, size, name) triples (host side, igvm-build).
/// Entries are sorted by address; for several symbols at one address the
/// largest (then the lexically first name) is kept. Empty names and names
/// containing NUL are skipped; identical names share one string; sizes
/// above `u32::MAX` are clamped.
#[cfg(any(test, feature = "alloc"))]
pub fn encode(symbols: &[(u64, u64, &str)]) -> alloc::vec::Vec<u8> {
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    let mut syms: Vec<(u64, u64, &str)> = symbols
        .iter()
        .copied()
        .filter(|(_, _, n)| !n.is_empty() && !n.contains('\0'))
        .collect();
    syms.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
    syms.dedup_by_key(|s| s.0);

    let mut strings: Vec<u8> = Vec::new();
    let mut offsets: BTreeMap<&str, u32> = BTreeMap::new();
    let mut entries: Vec<Entry> = Vec::with_capacity(syms.len());
    for (addr, size, name) in syms {
        let name_off = match offsets.get(name) {
            Some(&o) => o,
            None => {
                let Ok(o) = u32::try_from(strings.len()) else {
                    break;
                };
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
                offsets.insert(name, o);
                o
            }
        };
        entries.push(Entry {
            addr: U64::new(addr),
            size: U32::new(u32::try_from(size).unwrap_or(u32::MAX)),
            name_off: U32::new(name_off),
        });
    }
    let entries_bytes = entries.as_bytes();
    let strings_off = HEADER_SIZE + entries_bytes.len();
    let to_u32 = |n: usize| U32::new(u32::try_from(n).unwrap_or(u32::MAX));
    let hdr = Header {
        magic: SYMTAB_MAGIC,
        version: U32::new(SYMTAB_VERSION),
        count: to_u32(entries.len()),
        entries_off: to_u32(HEADER_SIZE),
        strings_off: to_u32(strings_off),
        strings_len: to_u32(strings.len()),
        reserved: U32::new(0),
    };
    let mut out = Vec::with_capacity(strings_off + strings.len());
    out.extend_from_slice(hdr.as_bytes());
    out.extend_from_slice(entries_bytes);
    out.extend_from_slice(&strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sample() -> Vec<u8> {
        encode(&[
            (0x3000, 0x10, "c::third"),
            (0x1000, 0x100, "a::first"),
            (0x2000, 0, "b::label"),
            (0x1000, 0x20, "a::alias_smaller"),
            (0x4000, 0x10, "a::first"),
            (0x5000, 0x10, ""),
        ])
    }

    #[test]
    fn round_trip_and_lookup() {
        let data = sample();
        let t = SymTab::parse(&data).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(0), Some((0x1000, 0x100, "a::first")));
        assert_eq!(t.get(1), Some((0x2000, 0, "b::label")));
        assert_eq!(t.get(3), Some((0x4000, 0x10, "a::first")));
        assert_eq!(t.get(4), None);
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.lookup(0x1000), Some(("a::first", 0)));
        assert_eq!(t.lookup(0x10ff), Some(("a::first", 0xff)));
        // Past the end of a sized symbol: nothing.
        assert_eq!(t.lookup(0x1100), None);
        // Size 0 extends to the next symbol.
        assert_eq!(t.lookup(0x2fff), Some(("b::label", 0xfff)));
        assert_eq!(t.lookup(0x300f), Some(("c::third", 0xf)));
        assert_eq!(t.lookup(0x3010), None);
        assert_eq!(t.lookup(0x4005), Some(("a::first", 5)));
        assert_eq!(t.lookup(u64::MAX), None);
        // Shared names are stored once.
        let (hdr, _) = Header::ref_from_prefix(&data).unwrap();
        assert_eq!(hdr.strings_len.get(), 27);
        assert_eq!(&data[data.len() - 27..], b"a::first\0b::label\0c::third\0");
    }

    #[test]
    fn empty_table() {
        let data = encode(&[]);
        let t = SymTab::parse(&data).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(0), None);
    }

    #[test]
    fn last_zero_size_symbol_matches_only_itself() {
        let data = encode(&[(0x10, 0, "only")]);
        let t = SymTab::parse(&data).unwrap();
        assert_eq!(t.lookup(0x10), Some(("only", 0)));
        assert_eq!(t.lookup(0x11), None);
    }

    #[test]
    fn position_independent() {
        let data = sample();
        let mut moved = Vec::from([0u8; 3]);
        moved.extend_from_slice(&data);
        let t = SymTab::parse(&moved[3..]).unwrap();
        assert_eq!(t.lookup(0x1001), Some(("a::first", 1)));
    }

    #[test]
    fn rejects_bad_headers() {
        let good = sample();
        assert_eq!(SymTab::parse(&[]).unwrap_err(), "symbol table truncated");
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(SymTab::parse(&bad).unwrap_err(), "bad symbol table magic");
        let mut bad = good.clone();
        bad[8] = 9;
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbol table version mismatch"
        );
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbol entries out of bounds"
        );
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbol entries overlap the header"
        );
        let mut bad = good.clone();
        bad[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbol strings out of bounds"
        );
    }

    #[test]
    fn rejects_unsorted_and_bad_names() {
        let good = sample();
        // Swap the first two entries' addresses.
        let mut bad = good.clone();
        let (a, b) = (HEADER_SIZE, HEADER_SIZE + ENTRY_SIZE);
        let first: [u8; 8] = bad[a..a + 8].try_into().unwrap();
        bad.copy_within(b..b + 8, a);
        bad[b..b + 8].copy_from_slice(&first);
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbols not sorted by address"
        );
        // A name offset past the blob.
        let mut bad = good.clone();
        bad[a + 12..a + 16].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            SymTab::parse(&bad).unwrap_err(),
            "symbol name out of bounds or unterminated"
        );
        // Unterminated last name.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() = b'x';
        assert!(SymTab::parse(&bad).is_err());
        // Invalid UTF-8 in the blob.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 2] = 0xff;
        assert_eq!(SymTab::parse(&bad).unwrap_err(), "symbol strings not UTF-8");
    }

    #[test]
    fn name_offset_inside_a_multibyte_char_is_rejected() {
        let mut data = encode(&[(0x10, 4, "é")]);
        let a = HEADER_SIZE;
        data[a + 12..a + 16].copy_from_slice(&1u32.to_le_bytes());
        assert!(SymTab::parse(&data).is_err());
    }

    /// Truncations and random corruption never panic, and whatever parses
    /// answers lookups without panicking.
    #[test]
    fn corrupt_tables_never_panic() {
        let good = sample();
        for n in 0..good.len() {
            let _ = SymTab::parse(&good[..n]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut bad = good.clone();
            for _ in 0..1 + (x % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % bad.len();
                bad[i] = (x >> 32) as u8;
            }
            if let Ok(t) = SymTab::parse(&bad) {
                parsed += 1;
                for addr in [0, 0x1000, 0x2001, 0x3005, 0x4000, x, u64::MAX] {
                    if let Some((name, off)) = t.lookup(addr) {
                        assert!(off <= addr);
                        assert!(!name.contains('\0'));
                    }
                }
                for i in 0..t.len() {
                    assert!(t.get(i).is_some());
                }
            }
        }
        assert!(parsed > 100, "only {parsed} corrupt tables parsed");
    }
}
