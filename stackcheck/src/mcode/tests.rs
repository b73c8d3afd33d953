//! Unit tests of the machine-code analysis on hand-encoded functions.

use std::collections::BTreeMap;

use iced_x86::{Decoder, DecoderOptions, Instruction};

use super::analyze;

const BASE: u64 = 0x1000;

fn decode(code: &[u8]) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, BASE, DecoderOptions::NONE);
    let mut v = Vec::new();
    while d.can_decode() {
        v.push(d.decode());
    }
    v
}

fn frame(
    code: &[u8],
    tables: &BTreeMap<usize, Vec<usize>>,
) -> (Result<u64, String>, Vec<Option<i64>>) {
    let ins = decode(code);
    let m = analyze(&ins, BASE, BASE + code.len() as u64, tables);
    (m.frame, m.depth_before)
}

#[test]
fn pushes_and_sub_rsp() {
    // push rbp; sub rsp,0x20; add rsp,0x20; pop rbp; ret
    let code = [
        0x55, 0x48, 0x83, 0xec, 0x20, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3,
    ];
    let (f, d) = frame(&code, &BTreeMap::new());
    assert_eq!(f, Ok(48));
    assert_eq!(d, [Some(8), Some(16), Some(48), Some(16), Some(8)]);
}

#[test]
fn retfq_reloading_cs_continues_in_the_function() {
    // push 0x10; lea rax,[rip+3]; push rax; retfq; sub rsp,0x40; add rsp,0x40; ret
    let code = [
        0x6a, 0x10, // push 0x10
        0x48, 0x8d, 0x05, 0x03, 0x00, 0x00, 0x00, // lea rax,[rip+3] -> after retfq
        0x50, // push rax
        0x48, 0xcb, // retfq
        0x48, 0x83, 0xec, 0x40, // sub rsp,0x40
        0x48, 0x83, 0xc4, 0x40, // add rsp,0x40
        0xc3,
    ];
    let (f, d) = frame(&code, &BTreeMap::new());
    // 8 + 16 pushed = 24 before the retfq; after it 8, then 8 + 64 = 72.
    assert_eq!(f, Ok(72));
    assert_eq!(d[4], Some(8), "sub rsp after the retfq: {d:?}");
}

#[test]
fn retfq_to_elsewhere_ends_the_walk() {
    // push 0x10; push rax (unknown); retfq; sub rsp,0x40 (unreached, seeded)
    let code = [0x6a, 0x10, 0x50, 0x48, 0xcb, 0x48, 0x83, 0xec, 0x40, 0xc3];
    let (f, _) = frame(&code, &BTreeMap::new());
    // The unreached tail is seeded from the preceding state (24): 24 + 64.
    assert_eq!(f, Ok(88));
}

#[test]
fn jump_table_targets_start_from_their_dispatch() {
    // 0: push rbp            (depth 16 after)
    // 1: sub rsp,0x40        (80)
    // 2: jmp rax             dispatch, targets {5}
    // 3: add rsp,0x40 ; 4: jmp rcx (tail, depth 16 -> seeds would be shallow)
    // 5: push rbx (88) ; 6: pop rbx ; 7: jmp 3
    let code = [
        0x55, // push rbp
        0x48, 0x83, 0xec, 0x40, // sub rsp,0x40
        0xff, 0xe0, // jmp rax
        0x48, 0x83, 0xc4, 0x40, // add rsp,0x40
        0xff, 0xe1, // jmp rcx
        0x53, // push rbx
        0x5b, // pop rbx
        0xeb, 0xf3, // jmp -13 -> add rsp
    ];
    let ins = decode(&code);
    let tables = BTreeMap::from([(2usize, vec![5usize])]);
    let m = analyze(&ins, BASE, BASE + code.len() as u64, &tables);
    assert_eq!(m.frame, Ok(88));
    assert_eq!(m.depth_before[5], Some(80));
    // Without the table the case is unreached and seeded from the deepest
    // undecoded indirect jump: the dispatch (80), not the tail jump (16).
    let m = analyze(&ins, BASE, BASE + code.len() as u64, &BTreeMap::new());
    assert_eq!(m.depth_before[5], Some(80));
    assert_eq!(m.frame, Ok(88));
}

#[test]
fn unknown_rsp_write_is_an_error_not_zero() {
    // sub rsp, rax ; ret
    let code = [0x48, 0x29, 0xc4, 0xc3];
    let (f, _) = frame(&code, &BTreeMap::new());
    assert!(f.is_err(), "{f:?}");
}
