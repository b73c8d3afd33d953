//! Instruction fetch: page crossing, faults, and the 15-byte bound.

use svsm_insn::{
    DecodeError, FetchFault, InsnFetch, MAX_INSN_LEN, Mode, Op, PAGE_SIZE, Port, decode,
};
use svsm_testkit::Rng;

/// Memory with mapped 4 KiB pages; records every request it gets.
struct Pages {
    /// (page address, contents)
    pages: Vec<(u64, Vec<u8>)>,
    requests: Vec<(u64, usize)>,
}

impl InsnFetch for Pages {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, FetchFault> {
        self.requests.push((addr, buf.len()));
        let page = addr & !(PAGE_SIZE - 1);
        let off = (addr - page) as usize;
        let (_, bytes) = self
            .pages
            .iter()
            .find(|(p, _)| *p == page)
            .ok_or(FetchFault { addr })?;
        let src = bytes
            .get(off..off + buf.len())
            .expect("request crosses a page");
        buf.copy_from_slice(src);
        Ok(buf.len())
    }
}

fn pages(bytes_at_end_of_first: &[u8], second: &[u8], map_second: bool) -> (Pages, u64) {
    let first_page = 0x10_0000;
    let mut a = vec![0xCC; PAGE_SIZE as usize];
    let start = PAGE_SIZE as usize - bytes_at_end_of_first.len();
    a[start..].copy_from_slice(bytes_at_end_of_first);
    let mut list = vec![(first_page, a)];
    if map_second {
        let mut b = vec![0xCC; PAGE_SIZE as usize];
        b[..second.len()].copy_from_slice(second);
        list.push((first_page + PAGE_SIZE, b));
    }
    (
        Pages {
            pages: list,
            requests: Vec::new(),
        },
        first_page + start as u64,
    )
}

#[test]
fn instruction_crossing_into_a_mapped_page_decodes() {
    // 66 E5 | 60: in ax, 0x60 split after two bytes.
    let (mut m, rip) = pages(&[0x66, 0xE5], &[0x60], true);
    let i = decode(&mut m, rip, Mode::Long64).unwrap();
    assert_eq!((i.op, i.len), (Op::In(Port::Imm(0x60)), 3));
    assert_eq!(m.requests, [(rip, 2), (rip + 2, 13)]);
}

#[test]
fn instruction_crossing_into_an_unmapped_page_faults_there() {
    let (mut m, rip) = pages(&[0x66, 0xE5], &[], false);
    assert_eq!(
        decode(&mut m, rip, Mode::Long64),
        Err(DecodeError::Fetch(FetchFault { addr: rip + 2 }))
    );
}

#[test]
fn instruction_ending_at_the_page_end_never_touches_the_next() {
    let (mut m, rip) = pages(&[0xF3, 0x6E], &[], false); // rep outsb
    let i = decode(&mut m, rip, Mode::Long64).unwrap();
    assert_eq!(
        (i.op, i.len, i.rep),
        (
            Op::Outs {
                segment: svsm_insn::Segment::Ds
            },
            2,
            true
        )
    );
    assert_eq!(m.requests, [(rip, 2)]);
}

#[test]
fn a_short_accessor_is_asked_again_and_a_zero_copy_is_a_fault() {
    struct OneByte(Vec<u8>, u64);
    impl InsnFetch for OneByte {
        fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, FetchFault> {
            match self.0.get((addr - self.1) as usize) {
                Some(b) => {
                    buf[0] = *b;
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    }
    let i = decode(
        &mut OneByte(vec![0x67, 0x66, 0xED], 0x1000),
        0x1000,
        Mode::Long64,
    )
    .unwrap();
    assert_eq!(i.len, 3);
    assert_eq!(
        decode(&mut OneByte(vec![0x67, 0x66], 0x1000), 0x1000, Mode::Long64),
        Err(DecodeError::Fetch(FetchFault { addr: 0x1002 }))
    );
}

#[test]
fn never_reads_past_15_bytes_whatever_the_prefixes() {
    let mut rng = Rng::new(15);
    let prefixes = [
        0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0x40, 0x48, 0x4F,
    ];
    for case in 0..20_000 {
        let mut page = vec![0u8; PAGE_SIZE as usize];
        page.iter_mut()
            .for_each(|b| *b = prefixes[rng.index(prefixes.len())]);
        // Sometimes a supported opcode after many prefixes, sometimes none.
        if case % 2 == 0 {
            let at = 8 + rng.index(12);
            page[at] = [0xE4, 0x89, 0xC7, 0x0F][rng.index(4)];
        }
        let mut m = Pages {
            pages: vec![(0x20_0000, page)],
            requests: Vec::new(),
        };
        let rip = 0x20_0000 + rng.below(PAGE_SIZE - 32);
        let r = decode(
            &mut m,
            rip,
            [Mode::Long64, Mode::Protected32, Mode::Protected16][case % 3],
        );
        let furthest = m
            .requests
            .iter()
            .map(|(a, n)| a + *n as u64 - rip)
            .max()
            .unwrap();
        assert!(furthest <= MAX_INSN_LEN as u64, "read {furthest} bytes");
        if let Ok(i) = r {
            assert!(usize::from(i.len) <= MAX_INSN_LEN);
        }
    }
    let (mut m, rip) = pages(&[0x66; 20], &[], false);
    assert_eq!(decode(&mut m, rip, Mode::Long64), Err(DecodeError::TooLong));
}

#[test]
fn rip_at_the_top_of_the_address_space_does_not_panic() {
    let mut m = Pages {
        pages: vec![],
        requests: Vec::new(),
    };
    let r = decode(&mut m, u64::MAX - 1, Mode::Long64);
    assert_eq!(
        r,
        Err(DecodeError::Fetch(FetchFault { addr: u64::MAX - 1 }))
    );
    assert_eq!(m.requests, [(u64::MAX - 1, 2)]);
}
