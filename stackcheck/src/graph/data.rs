//! What the image's data says about code: address-taken functions and
//! vtables (runs of `drop_in_place-or-0, size, align, fn, fn, ...` words).

use std::collections::{BTreeMap, BTreeSet};

use crate::elf::{Image, RelocValue};

/// One vtable found in data.
#[derive(Debug, Clone)]
pub struct Vtable {
    /// Functions from offset 0x18 on (index 0 is offset 0x18).
    pub methods: Vec<usize>,
    /// The traits its methods' names mention (`<Type as Trait>::method`):
    /// the trait it implements and its supertraits. Empty when unknown.
    pub traits: Vec<String>,
}

impl Vtable {
    /// Whether a `dyn trait_name` call may use this vtable: it names the
    /// trait, or names none (unknown, so it may).
    pub fn may_be(&self, trait_name: &str) -> bool {
        self.traits.is_empty() || self.traits.iter().any(|t| t == trait_name)
    }

    /// The function at byte offset `disp` of the vtable, if any.
    pub fn at(&self, disp: i64) -> Option<usize> {
        let k = usize::try_from((disp - 24) / 8).ok()?;
        (disp >= 24 && disp % 8 == 0)
            .then(|| self.methods.get(k).copied())
            .flatten()
    }
}

pub struct DataScan {
    pub taken: BTreeSet<usize>,
    pub vtables: BTreeMap<u64, Vtable>,
    pub vtable_slots: BTreeMap<i64, BTreeSet<usize>>,
}

pub fn scan(img: &Image<'_>) -> DataScan {
    let mut out = DataScan {
        taken: BTreeSet::new(),
        vtables: BTreeMap::new(),
        vtable_slots: BTreeMap::new(),
    };
    for seg in img.segments.iter().filter(|s| !s.exec) {
        let Some((base, words)) = words_of(img, seg.addr, seg.data) else {
            continue;
        };
        let func_of = |w: u64| if w == 0 { None } else { img.function_at(w) };
        out.taken.extend(words.iter().filter_map(|&w| func_of(w)));
        let mut p = 0;
        while p + 3 < words.len() {
            let (w0, w1, w2) = (words[p], words[p + 1], words[p + 2]);
            let drop_ok = w0 == 0 || func_of(w0).is_some();
            let layout_ok = w1 < (1 << 40) && w2.is_power_of_two() && w2 <= (1 << 16);
            if !(drop_ok && layout_ok && func_of(words[p + 3]).is_some()) {
                p += 1;
                continue;
            }
            let at = base + 8 * p as u64;
            let methods: Vec<usize> = words[p + 3..].iter().map_while(|&w| func_of(w)).collect();
            for (k, &ti) in methods.iter().enumerate() {
                out.vtable_slots
                    .entry((24 + 8 * k) as i64)
                    .or_default()
                    .insert(ti);
            }
            p += 3 + methods.len();
            let mut traits: Vec<String> = methods
                .iter()
                .filter_map(|&m| trait_of(&img.functions[m].demangled))
                .collect();
            traits.sort();
            traits.dedup();
            out.vtables.insert(at, Vtable { methods, traits });
        }
    }
    for v in img.relocs.values() {
        if let RelocValue::Value(v) = v
            && let Some(ti) = img.function_at(*v)
        {
            out.taken.insert(ti);
        }
    }
    out
}

/// The 8-aligned words of a data segment with relocations applied (imports
/// read as 0), and the address of the first word.
fn words_of(img: &Image<'_>, addr: u64, data: &[u8]) -> Option<(u64, Vec<u64>)> {
    let base = addr.next_multiple_of(8);
    let skip = (base - addr) as usize;
    if skip >= data.len() {
        return None;
    }
    let mut words: Vec<u64> = data[skip..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let end = base + 8 * words.len() as u64;
    for (a, v) in img.relocs.range(base, end) {
        if a % 8 == 0 {
            words[((a - base) / 8) as usize] = match v {
                RelocValue::Value(v) => *v,
                RelocValue::Import(_) => 0,
            };
        }
    }
    Some((base, words))
}

/// `Trait` of a method named `<Type as Trait>::method` (generic arguments of
/// the trait dropped), else None.
pub fn trait_of(name: &str) -> Option<String> {
    let inner = name.strip_prefix('<')?;
    // The matching '>' of the leading '<', tracking nesting.
    let mut depth = 1usize;
    let mut close = None;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 1 => {
                close = Some(i);
                break;
            }
            '>' => depth -= 1,
            _ => {}
        }
    }
    let qualified = &inner[..close?];
    // The last top-level " as " separates the type from the trait.
    let mut depth = 0usize;
    let mut split = None;
    let bytes = qualified.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && qualified[i..].starts_with(" as ") => split = Some(i + 4),
            _ => {}
        }
    }
    let t = &qualified[split?..];
    let t = t.split('<').next().unwrap_or(t);
    (!t.is_empty()).then(|| t.to_string())
}
