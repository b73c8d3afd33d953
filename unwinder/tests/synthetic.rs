//! Hand-made CFI that models the kernel: an exception entry stub described
//! with `.cfi_signal_frame` over the CPU-pushed frame (on an IST stack), the
//! interrupted code on another stack, and an outermost frame marked with
//! `.cfi_undefined rip`.

mod common;

use common::synth::{FakeMem, Func, build};
use gimli::X86_64;
use gimli::write::CallFrameInstruction as I;
use svsm_unwinder::{
    BacktraceWriter, ExceptionEntry, Module, Regs, StopReason, UnwindState, Walk, coverage,
    write_backtrace,
};

const OUTER: u64 = 0x1000;
const INTERRUPTED: u64 = 0x2000;
const STUB: u64 = 0x3000;
const HANDLER: u64 = 0x4000;

fn funcs() -> Vec<Func> {
    vec![
        // The outermost frame: `.cfi_undefined rip`.
        Func {
            start: OUTER,
            len: 0x100,
            signal: false,
            insns: vec![(0, I::Undefined(X86_64::RA))],
        },
        // push rbp at +0.
        Func {
            start: INTERRUPTED,
            len: 0x100,
            signal: false,
            insns: vec![(1, I::CfaOffset(16)), (1, I::Offset(X86_64::RBP, -16))],
        },
        // Entry stub: the CPU pushed ss, rsp, rflags, cs, rip, error code
        // (48 bytes); the stub pushes the vector number at +0 (4 bytes).
        Func {
            start: STUB,
            len: 0x100,
            signal: true,
            insns: vec![
                (0, I::Cfa(X86_64::RSP, 48)),
                (0, I::Offset(X86_64::RA, -40)),
                (0, I::Offset(X86_64::RSP, -16)),
                (4, I::CfaOffset(56)),
            ],
        },
        // The handler: push rbx.
        Func {
            start: HANDLER,
            len: 0x100,
            signal: false,
            insns: vec![(1, I::CfaOffset(16)), (1, I::Offset(X86_64::RBX, -16))],
        },
    ]
}

/// The interrupted code runs on a stack *below* the IST stack the handler
/// uses, so the stack pointer goes down across the exception frame.
fn memory() -> FakeMem {
    let mut m = FakeMem {
        ranges: vec![(0x8000, 0x8100), (0xa000, 0xa100)],
        ..FakeMem::default()
    };
    // Interrupted stack: return address into OUTER, saved nothing else.
    m.set(0x8040, OUTER + 0x50);
    // CPU frame on the IST stack, top 0xa100.
    m.set(0xa0f8, 0x10); // ss
    m.set(0xa0f0, 0x8040); // rsp
    m.set(0xa0e8, 0x2); // rflags
    m.set(0xa0e0, 0x8); // cs
    m.set(0xa0d8, INTERRUPTED); // rip: the first byte of a function
    m.set(0xa0d0, 0); // error code
    m.set(0xa0c8, 14); // vector, pushed by the stub
    m.set(0xa0c0, STUB + 0x10); // return address of `call handler`
    m.set(0xa0b8, 0x1234); // rbx saved by the handler
    m
}

fn handler_regs() -> Regs {
    Regs {
        rip: HANDLER + 0x20,
        rsp: 0xa0b8,
        rbp: 0x5555,
        rbx: 0x9999,
        ..Regs::default()
    }
}

#[test]
fn unwinds_through_signal_frame_into_interrupted_code() {
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).expect("module")];
    let mem = memory();
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::EndOfStack));
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.pc, f.sp, f.pc_is_exact, f.exception))
        .collect();
    let entry = ExceptionEntry {
        stub_pc: STUB + 0x10,
        stub_cfa: 0xa100,
    };
    assert_eq!(
        got,
        vec![
            (HANDLER + 0x20, 0xa0b8, true, None),
            (STUB + 0x10, 0xa0c8, false, None),
            (INTERRUPTED, 0x8040, true, Some(entry)),
            (OUTER + 0x50, 0x8048, false, None),
        ]
    );
    // rbx restored from the handler's save slot, rbp untouched.
    assert_eq!(frames[1].regs.rbx, 0x1234);
    assert_eq!(frames[2].regs.rbp, 0x5555);
    assert_eq!(frames[2].cfa, Some(0x8048));
    // Only allowed reads were made.
    assert!(mem.reads.borrow().iter().all(|&(_, ok)| ok));
}

#[test]
fn return_address_lookup_uses_pc_minus_one() {
    // A return address right after a call at the very end of OUTER must be
    // attributed to OUTER (pc - 1), not to the function that follows.
    let mut f = funcs();
    f.push(Func {
        start: 0x1100,
        len: 0x10,
        signal: false,
        insns: vec![],
    });
    let blob = build(&f);
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut mem = memory();
    mem.set(0x8040, 0x1100); // return address == end of OUTER
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(frames[3].lookup_pc(), 0x10ff);
    // OUTER's undefined RA ends the walk; had 0x1100 been used, the empty
    // FDE (CIE default rule: ra at CFA-8) would have continued.
    assert_eq!(walk.stop_reason(), Some(StopReason::EndOfStack));
    assert_eq!(frames.len(), 4);
}

#[test]
fn interrupted_pc_is_exact_only_behind_a_signal_frame() {
    // Put the interrupted stack above the IST stack so that the stack
    // pointer grows either way; only the 'S' augmentation differs.
    let run = |signal: bool| {
        let mut f = funcs();
        f[2].signal = signal;
        let blob = build(&f);
        let modules = [Module::new(blob.sections()).unwrap()];
        let mut mem = memory();
        mem.ranges.push((0xb000, 0xb100));
        mem.set(0xa0f0, 0xb040);
        mem.set(0xb040, OUTER + 0x50);
        let mut state = Box::new(UnwindState::new());
        let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
        let frames: Vec<_> = walk.by_ref().collect();
        (frames, walk.stop_reason())
    };
    let (frames, stop) = run(true);
    assert_eq!(stop, Some(StopReason::EndOfStack));
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[2].lookup_pc(), INTERRUPTED);
    // Without the marker the interrupted pc is taken as a return address:
    // 0x1fff lies in no FDE.
    let (frames, stop) = run(false);
    assert_eq!(stop, Some(StopReason::NoFde));
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2].lookup_pc(), INTERRUPTED - 1);
    assert_eq!(frames[2].exception, None);
}

#[test]
fn stack_pointer_must_grow_between_ordinary_frames() {
    // Without the marker, the step from the stub to the lower interrupted
    // stack is a CFA that does not advance.
    let mut f = funcs();
    f[2].signal = false;
    let blob = build(&f);
    let modules = [Module::new(blob.sections()).unwrap()];
    let mem = memory();
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let n = walk.by_ref().count();
    assert_eq!(walk.stop_reason(), Some(StopReason::CfaNotAdvancing));
    assert_eq!(n, 2);
}

#[test]
fn refused_read_stops_with_bad_memory() {
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut mem = memory();
    mem.ranges = vec![(0xa000, 0xa100)]; // the interrupted stack is off limits
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let n = walk.by_ref().count();
    assert_eq!(walk.stop_reason(), Some(StopReason::BadMemory));
    assert_eq!(n, 3);
    let reads = mem.reads.borrow();
    assert_eq!(reads.last(), Some(&(0x8040, false)));
    assert_eq!(reads.iter().filter(|r| !r.1).count(), 1);
}

#[test]
fn pc_without_fde_stops_with_no_fde() {
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut mem = memory();
    mem.set(0x8040, 0x7777); // return into nowhere
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::NoFde));
    assert_eq!(frames.last().unwrap().pc, 0x7777);
    assert_eq!(frames.last().unwrap().cfa, None);
}

#[test]
fn exception_loop_is_detected() {
    // The interrupted context is the stub frame itself, forever: each
    // crossing lands on the same (pc, sp).
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut mem = memory();
    mem.set(0xa0d8, STUB + 0x10); // rip: back into the stub (exact pc)
    mem.set(0xa0f0, 0xa0c8); // rsp: the stub's own frame
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, handler_regs()).with_limit(100);
    let n = walk.by_ref().count();
    assert_eq!(walk.stop_reason(), Some(StopReason::Loop));
    assert!(n < 10, "{n} frames");
}

#[test]
fn starting_from_an_exception_context_marks_frame_zero() {
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mem = memory();
    let mut state = Box::new(UnwindState::new());
    let entry = ExceptionEntry {
        stub_pc: STUB,
        stub_cfa: 0xa100,
    };
    let regs = Regs {
        rip: INTERRUPTED,
        rsp: 0x8040,
        ..Regs::default()
    };
    let walk = Walk::new(&modules, &mem, &mut state, regs).from_exception(entry);
    let mut seen = Vec::new();
    let stop = walk.run(|f| seen.push((f.pc, f.exception)));
    assert_eq!(stop, StopReason::EndOfStack);
    assert_eq!(seen, vec![(INTERRUPTED, Some(entry)), (OUTER + 0x50, None)]);
}

fn symbolize(pc: u64) -> Option<(&'static str, u64)> {
    let names = [
        (OUTER, "svsm_kernel::outer"),
        (INTERRUPTED, "svsm_kernel::interrupted"),
        (STUB, "entry_vector_14"),
        (HANDLER, "svsm_kernel::handler"),
    ];
    names
        .iter()
        .find(|(s, _)| pc >= *s && pc < s + 0x100)
        .map(|(s, n)| (*n, pc - s))
}

#[test]
fn formats_backtrace_block() {
    let blob = build(&funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mem = memory();
    let mut state = Box::new(UnwindState::new());
    let walk = Walk::new(&modules, &mem, &mut state, handler_regs());
    let mut out = String::new();
    let stop = write_backtrace(&mut out, &[0xde, 0xad, 0x01], walk, symbolize, |f| {
        // The stub pushed the vector just below the CPU frame.
        use svsm_unwinder::Memory;
        mem.read_u64(f.exception?.stub_cfa - 56).map(|v| v as u32)
    })
    .unwrap();
    assert_eq!(stop, StopReason::EndOfStack);
    let want = "\
BACKTRACE BEGIN build-id=dead01
  #00 pc=0x0000000000004020 sp=0x000000000000a0b8 svsm_kernel::handler+0x20
  #01 pc=0x0000000000003010 sp=0x000000000000a0c8 entry_vector_14+0x10
  #02 pc=0x0000000000002000 sp=0x0000000000008040 [exception vector=14] svsm_kernel::interrupted+0x0
  #03 pc=0x0000000000001050 sp=0x0000000000008048 svsm_kernel::outer+0x50
BACKTRACE END frames=4 stop=end-of-stack
";
    assert_eq!(out, want);
}

#[test]
fn writer_handles_unknown_symbols_and_vectors() {
    let mut out = String::new();
    let mut w = BacktraceWriter::begin(&mut out, &[]).unwrap();
    let frame = svsm_unwinder::Frame {
        index: 0,
        pc: 0xffff_ffff_8001_2345,
        sp: 0xffff_ff00_0001_2f40,
        cfa: None,
        exception: Some(ExceptionEntry {
            stub_pc: 0,
            stub_cfa: 0,
        }),
        pc_is_exact: true,
        regs: Regs::default(),
        valid: 0,
    };
    w.frame(&frame, None, None).unwrap();
    w.end(StopReason::NoFde).unwrap();
    assert_eq!(
        out,
        "BACKTRACE BEGIN build-id=\n  #00 pc=0xffffffff80012345 sp=0xffffff0000012f40 [exception vector=?] <unknown>\nBACKTRACE END frames=1 stop=no-fde\n"
    );
}

#[test]
fn stop_reason_names_round_trip() {
    for r in StopReason::ALL {
        assert_eq!(StopReason::from_name(r.name()), Some(r));
    }
    assert_eq!(StopReason::from_name("bogus"), None);
}

#[test]
fn coverage_counts_gaps_and_padding() {
    let blob = build(&funcs());
    let module = Module::new(blob.sections()).unwrap();
    // .text = [0x1000, 0x4200): gaps 0x1100..0x2000 (padding),
    // 0x2100..0x3000 (code), 0x3100..0x4000 (padding), 0x4100..0x4200 (code).
    let mut text = vec![0x55u8; 0x3200];
    text[0x100..0x1000].fill(0xcc);
    text[0x2100..0x3000].fill(0x90);
    text[0x2100..0x210a].copy_from_slice(&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]);
    let mut gaps = Vec::new();
    let cov = coverage(&module, 0x1000, 0x4200, Some(&text), |s, e, p| {
        gaps.push((s, e, p))
    })
    .unwrap();
    assert_eq!(
        gaps,
        vec![
            (0x1100, 0x2000, true),
            (0x2100, 0x3000, false),
            (0x3100, 0x4000, true),
            (0x4100, 0x4200, false)
        ]
    );
    assert_eq!(cov.covered_bytes, 0x400);
    assert_eq!(cov.padding_bytes, 0x1e00);
    assert_eq!(cov.uncovered_bytes, 0xf00 + 0x100);
    assert_eq!(cov.text_bytes, 0x3200);
    assert_eq!(cov.covered_ppm(), 0x400 * 1_000_000 / 0x1400);
    let full = coverage(&module, 0x2000, 0x2100, None, |_, _, _| panic!("gap")).unwrap();
    assert_eq!(full.covered_ppm(), 1_000_000);
}

#[test]
fn coverage_of_an_inverted_range_is_empty_not_a_panic() {
    let blob = build(&funcs());
    let module = Module::new(blob.sections()).unwrap();
    let cov = coverage(&module, 0x4200, 0x1000, None, |_, _, _| panic!("gap")).unwrap();
    assert_eq!(cov.text_bytes, 0);
    assert_eq!(
        cov.covered_bytes + cov.uncovered_bytes + cov.padding_bytes,
        0
    );
    let huge = svsm_unwinder::Coverage {
        covered_bytes: u64::MAX,
        uncovered_bytes: u64::MAX,
        ..Default::default()
    };
    assert_eq!(huge.covered_ppm(), 500_000);
}

#[test]
fn padding_recognises_nops_and_int3_only() {
    use svsm_unwinder::is_padding;
    assert!(is_padding(&[0xcc, 0xcc, 0x90]));
    assert!(is_padding(&[0x0f, 0x1f, 0x44, 0x00, 0x00]));
    assert!(is_padding(&[0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]));
    assert!(is_padding(&[0x0f, 0x1f, 0x40, 0x00, 0x0f, 0x1f, 0x00]));
    assert!(!is_padding(&[0x0f, 0x1f, 0x44, 0x00])); // truncated
    assert!(!is_padding(&[0x55]));
    assert!(!is_padding(&[0xcc, 0xc3]));
    assert!(!is_padding(&[0x0f, 0x1f, 0x48, 0x00])); // reg != 0
}

// ---------------------------------------------------------------------
// Stack switches through a `svsm_call_on_stack`-like trampoline.

const TRAMP: u64 = 0x5000;
const CALLEE: u64 = 0x6000;

/// OUTER (outermost, on stack A) called the trampoline, which switched to
/// stack B and called CALLEE:
/// `push rbp; .cfi_rel_offset rbp,0; mov rbp,rsp; .cfi_def_cfa_register rbp;
/// mov rsp,rdx; call rsi` (return address TRAMP+0x10).
fn switch_funcs() -> Vec<Func> {
    vec![
        Func {
            start: OUTER,
            len: 0x100,
            signal: false,
            insns: vec![(0, I::Undefined(X86_64::RA))],
        },
        Func {
            start: TRAMP,
            len: 0x20,
            signal: false,
            insns: vec![
                (1, I::CfaOffset(16)),
                (1, I::Offset(X86_64::RBP, -16)),
                (4, I::CfaRegister(X86_64::RBP)),
            ],
        },
        // A leaf with the default CIE rules (CFA = rsp+8).
        Func {
            start: CALLEE,
            len: 0x100,
            signal: false,
            insns: vec![],
        },
    ]
}

const STACK_A: (u64, u64) = (0x8000, 0x8100);
/// Stack B lies above stack A: returning from B to A lowers sp.
const STACK_B: (u64, u64) = (0xc000, 0xc100);

fn switch_memory(ids: Option<(u64, u64)>) -> FakeMem {
    let mut m = FakeMem {
        ranges: vec![STACK_A, STACK_B],
        ..FakeMem::default()
    };
    if let Some((a, b)) = ids {
        m.stacks = vec![(STACK_A.0, STACK_A.1, a), (STACK_B.0, STACK_B.1, b)];
    }
    // Stack A: OUTER's `call svsm_call_on_stack`, then `push rbp`.
    m.set(0x8038, OUTER + 0x50);
    m.set(0x8030, 0x4242); // OUTER's rbp
    // Stack B: the trampoline's `call rsi`.
    m.set(0xc0f0, TRAMP + 0x10);
    m
}

fn callee_regs() -> Regs {
    Regs {
        rip: CALLEE + 0x5,
        rsp: 0xc0f0,
        rbp: 0x8030, // the trampoline's frame pointer, on stack A
        ..Regs::default()
    }
}

fn run_switch(mem: &FakeMem) -> (Vec<svsm_unwinder::Frame>, Option<StopReason>) {
    let blob = build(&switch_funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, mem, &mut state, callee_regs()).with_limit(100);
    let frames: Vec<_> = walk.by_ref().collect();
    (frames, walk.stop_reason())
}

#[test]
fn switch_to_a_lower_stack_continues_when_stack_ids_differ() {
    let mem = switch_memory(Some((1, 2)));
    let (frames, stop) = run_switch(&mem);
    assert_eq!(stop, Some(StopReason::EndOfStack));
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.pc, f.sp, f.pc_is_exact, f.exception))
        .collect();
    assert_eq!(
        got,
        vec![
            (CALLEE + 0x5, 0xc0f0, true, None),
            (TRAMP + 0x10, 0xc0f8, false, None),
            // Back on stack A, below the trampoline's sp: an ordinary
            // return address.
            (OUTER + 0x50, 0x8040, false, None),
        ]
    );
    assert_eq!(frames[1].cfa, Some(0x8040));
    assert_eq!(frames[2].regs.rbp, 0x4242);
    assert_eq!(frames[2].lookup_pc(), OUTER + 0x4f);
}

#[test]
fn lower_caller_sp_on_the_same_or_an_unknown_stack_stops() {
    for ids in [Some((7, 7)), None] {
        let mem = switch_memory(ids);
        let (frames, stop) = run_switch(&mem);
        assert_eq!(stop, Some(StopReason::CfaNotAdvancing), "{ids:?}");
        assert_eq!(frames.len(), 2, "{ids:?}");
        assert_eq!(frames[1].pc, TRAMP + 0x10);
    }
    // Only one side known: still no switch.
    let mut mem = switch_memory(Some((1, 2)));
    mem.stacks.truncate(1);
    let (frames, stop) = run_switch(&mem);
    assert_eq!(stop, Some(StopReason::CfaNotAdvancing));
    assert_eq!(frames.len(), 2);
}

#[test]
fn stack_id_is_forwarded_through_references() {
    use svsm_unwinder::Memory;
    let mem = switch_memory(Some((1, 2)));
    let r: &FakeMem = &mem;
    assert_eq!(Memory::stack_id(&r, 0xc010), Some(2));
    assert_eq!(Memory::stack_id(&r, 0x9000), None);
    // Walking through `&&FakeMem` sees the ids too.
    let blob = build(&switch_funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut state = Box::new(UnwindState::new());
    let stop = Walk::new(&modules, &r, &mut state, callee_regs()).run(|_| {});
    assert_eq!(stop, StopReason::EndOfStack);
}

#[test]
fn a_b_a_b_stack_switch_loop_terminates() {
    // Corrupt frame pointers: the trampoline frame on A says its caller is
    // the trampoline on B and vice versa.
    let mut mem = switch_memory(Some((1, 2)));
    mem.set(0x8038, TRAMP + 0x10);
    mem.set(0x8030, 0xc0e0); // rbp -> stack B
    mem.set(0xc0e8, TRAMP + 0x10);
    mem.set(0xc0e0, 0x8030); // rbp -> stack A
    let (frames, stop) = run_switch(&mem);
    assert_eq!(stop, Some(StopReason::Loop));
    // CALLEE, TRAMP@B, TRAMP@A (switch), TRAMP@B, then the second switch
    // to (TRAMP+0x10, 0x8040) repeats.
    assert_eq!(frames.len(), 4);
    assert_eq!(
        frames.iter().map(|f| f.sp).collect::<Vec<_>>(),
        vec![0xc0f0, 0xc0f8, 0x8040, 0xc0f0]
    );
}

#[test]
fn random_switching_stacks_always_terminate() {
    // Two known stacks filled with frame pointers and return addresses into
    // the trampoline, so that every frame may switch stacks: walks end with
    // a stop reason within the limit, whatever the contents.
    let blob = build(&switch_funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut state = Box::new(UnwindState::new());
    let mut rng = svsm_testkit::Rng::new(0x1234_5678_9abc_def0);
    let mut rnd = move || rng.next_u64();
    let mut loops = 0;
    for _ in 0..500 {
        let mut mem = switch_memory(Some((1, 2)));
        // Even slots hold saved frame pointers (to an even slot of either
        // stack), odd slots the trampoline's return address.
        for (lo, hi) in [STACK_A, STACK_B] {
            for a in (lo..hi).step_by(16) {
                let base = [STACK_A.0, STACK_B.0][(rnd() % 2) as usize];
                mem.set(a, base + (rnd() % 0x10) * 16);
                mem.set(a + 8, TRAMP + 0x10);
            }
        }
        let regs = Regs {
            rip: TRAMP + 0x10,
            rsp: STACK_B.0 + (rnd() % 0x10) * 16,
            rbp: [STACK_A.0, STACK_B.0][(rnd() % 2) as usize] + (rnd() % 0x10) * 16,
            ..Regs::default()
        };
        let mut walk = Walk::new(&modules, &mem, &mut state, regs).with_limit(200);
        let n = walk.by_ref().count();
        let stop = walk.stop_reason().expect("a finished walk has a reason");
        assert!(n <= 200);
        loops += usize::from(stop == StopReason::Loop);
    }
    // The generator does produce switching loops.
    assert!(loops > 0);
}

// ---------------------------------------------------------------------
// All GPRs: an exception interrupting an inline stack probe whose CFA is
// computed from r11.

const PROBE: u64 = 0x7000;
const GPR_STUB: u64 = 0x7100;

/// `probe`: `push rbp; mov r11, rsp; sub r11, 0x40; .cfi_def_cfa_register
/// r11; .cfi_adjust_cfa_offset 0x40; loop: sub rsp, ...; mov [rsp], 0 ...`.
/// The entry stub (a signal frame) pushes the vector, r11 and rax over the
/// CPU frame and calls HANDLER at +0x10 (return address +0x15).
fn gpr_funcs(stub_saves_r11: bool) -> Vec<Func> {
    let mut stub = vec![
        (0, I::Cfa(X86_64::RSP, 48)),
        (0, I::Offset(X86_64::RA, -40)),
        (0, I::Offset(X86_64::RSP, -16)),
        (4, I::CfaOffset(56)),
        (6, I::CfaOffset(64)),
        (8, I::CfaOffset(72)),
        (8, I::Offset(X86_64::RAX, -72)),
    ];
    if stub_saves_r11 {
        stub.push((8, I::Offset(X86_64::R11, -64)));
    }
    vec![
        Func {
            start: OUTER,
            len: 0x100,
            signal: false,
            insns: vec![(0, I::Undefined(X86_64::RA))],
        },
        Func {
            start: PROBE,
            len: 0x100,
            signal: false,
            insns: vec![
                (1, I::CfaOffset(16)),
                (1, I::Offset(X86_64::RBP, -16)),
                (0xb, I::Cfa(X86_64::R11, 0x50)),
            ],
        },
        Func {
            start: GPR_STUB,
            len: 0x100,
            signal: true,
            insns: stub,
        },
        Func {
            start: HANDLER,
            len: 0x100,
            signal: false,
            insns: vec![(1, I::CfaOffset(16)), (1, I::Offset(X86_64::RBX, -16))],
        },
    ]
}

fn gpr_memory() -> FakeMem {
    let mut m = FakeMem {
        ranges: vec![(0x8000, 0x8100), (0xa000, 0xa100)],
        ..FakeMem::default()
    };
    // Interrupted stack: OUTER called PROBE, which pushed rbp at 0x8070;
    // r11 = 0x8070 - 0x40 = 0x8030, the probe faulted with rsp = 0x8040.
    m.set(0x8078, OUTER + 0x50);
    m.set(0x8070, 0x7777);
    // IST stack.
    m.set(0xa0f8, 0x10); // ss
    m.set(0xa0f0, 0x8040); // rsp
    m.set(0xa0e8, 0x2); // rflags
    m.set(0xa0e0, 0x8); // cs
    m.set(0xa0d8, PROBE + 0x18); // rip: in the probe loop
    m.set(0xa0d0, 0); // error code
    m.set(0xa0c8, 14); // vector
    m.set(0xa0c0, 0x8030); // r11
    m.set(0xa0b8, 0xaaaa); // rax
    m.set(0xa0b0, GPR_STUB + 0x15); // return address of `call handler`
    m.set(0xa0a8, 0x1234); // rbx saved by the handler
    m
}

fn gpr_handler_regs() -> Regs {
    Regs {
        rip: HANDLER + 0x20,
        rsp: 0xa0a8,
        rbp: 0x5555,
        r11: 0xdead,
        rcx: 0xc,
        ..Regs::default()
    }
}

#[test]
fn unwinds_through_an_r11_based_cfa_behind_an_exception() {
    let blob = build(&gpr_funcs(true));
    let modules = [Module::new(blob.sections()).unwrap()];
    let mem = gpr_memory();
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, gpr_handler_regs());
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::EndOfStack));
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.pc, f.sp, f.cfa, f.pc_is_exact))
        .collect();
    assert_eq!(
        got,
        vec![
            (HANDLER + 0x20, 0xa0a8, Some(0xa0b8), true),
            (GPR_STUB + 0x15, 0xa0b8, Some(0xa100), false),
            (PROBE + 0x18, 0x8040, Some(0x8080), true),
            (OUTER + 0x50, 0x8080, Some(0x8088), false),
        ]
    );
    // Walk::new does not trust #00's caller-saved registers.
    assert_eq!(frames[0].get(X86_64::R11), None);
    assert_eq!(frames[0].get(X86_64::RBP), Some(0x5555));
    // The stub's explicit rules restore r11 and rax for the interrupted
    // frame; other caller-saved registers stay unknown.
    assert_eq!(frames[2].get(X86_64::R11), Some(0x8030));
    assert_eq!(frames[2].get(X86_64::RAX), Some(0xaaaa));
    assert_eq!(frames[2].get(X86_64::RCX), None);
    assert_eq!(frames[2].regs.rcx, 0);
    assert_eq!(frames[2].get(X86_64::RBP), Some(0x5555));
    // After the probe's ordinary frame, r11 and rax are unknown again;
    // callee-saved rbp comes from its save slot.
    assert_eq!(frames[3].get(X86_64::R11), None);
    assert_eq!(frames[3].get(X86_64::RAX), None);
    assert_eq!(frames[3].get(X86_64::RBP), Some(0x7777));
    assert_eq!(frames[3].get(X86_64::RA), Some(OUTER + 0x50));
}

#[test]
fn a_signal_frame_without_a_rule_leaves_caller_saved_unknown() {
    // Start in the stub itself with every register trusted and r11 holding
    // the right value: without an r11 rule in the stub's CFI, the
    // interrupted frame still may not use it.
    let run = |saves_r11: bool| {
        let blob = build(&gpr_funcs(saves_r11));
        let modules = [Module::new(blob.sections()).unwrap()];
        let mem = gpr_memory();
        let mut state = Box::new(UnwindState::new());
        let regs = Regs {
            rip: GPR_STUB + 0x10,
            rsp: 0xa0b8,
            r11: 0x8030,
            ..Regs::default()
        };
        let mut walk = Walk::new(&modules, &mem, &mut state, regs).with_all_registers_valid();
        let frames: Vec<_> = walk.by_ref().collect();
        (frames, walk.stop_reason())
    };
    let (frames, stop) = run(false);
    assert_eq!(stop, Some(StopReason::BadCfi));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].get(X86_64::R11), Some(0x8030));
    assert_eq!(frames[1].pc, PROBE + 0x18);
    assert_eq!(frames[1].get(X86_64::R11), None);
    assert_eq!(frames[1].cfa, None);
    let (frames, stop) = run(true);
    assert_eq!(stop, Some(StopReason::EndOfStack));
    assert_eq!(frames.len(), 3);
}

#[test]
fn frame_zero_caller_saved_registers_need_all_registers_valid() {
    // The kernel starting from a saved exception frame: #00 is the probe.
    let blob = build(&gpr_funcs(true));
    let modules = [Module::new(blob.sections()).unwrap()];
    let mem = gpr_memory();
    let regs = Regs {
        rip: PROBE + 0x18,
        rsp: 0x8040,
        rbp: 0x1,
        r11: 0x8030,
        ..Regs::default()
    };
    let entry = ExceptionEntry {
        stub_pc: GPR_STUB,
        stub_cfa: 0xa100,
    };
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, regs).from_exception(entry);
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::BadCfi));
    assert_eq!(frames.len(), 1);

    let mut walk = Walk::new(&modules, &mem, &mut state, regs)
        .from_exception(entry)
        .with_all_registers_valid();
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::EndOfStack));
    assert_eq!(
        frames.iter().map(|f| (f.pc, f.sp)).collect::<Vec<_>>(),
        vec![(PROBE + 0x18, 0x8040), (OUTER + 0x50, 0x8080)]
    );
    assert_eq!(frames[0].exception, Some(entry));
    assert_eq!(frames[0].valid, svsm_unwinder::VALID_ALL);
}

#[test]
fn register_rules_may_use_any_gpr() {
    // A CFA in rax and rbx restored from r9 (a `Register` rule).
    let funcs = vec![
        Func {
            start: OUTER,
            len: 0x100,
            signal: false,
            insns: vec![(0, I::Undefined(X86_64::RA))],
        },
        Func {
            start: PROBE,
            len: 0x100,
            signal: false,
            insns: vec![
                (0, I::Cfa(X86_64::RAX, 8)),
                (0, I::Register(X86_64::RBX, X86_64::R9)),
            ],
        },
    ];
    let blob = build(&funcs);
    let modules = [Module::new(blob.sections()).unwrap()];
    let mut mem = gpr_memory();
    mem.set(0x8050, OUTER + 0x50);
    let regs = Regs {
        rip: PROBE + 4,
        rsp: 0x8000,
        rax: 0x8050,
        r9: 0x99,
        ..Regs::default()
    };
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, regs).with_all_registers_valid();
    let frames: Vec<_> = walk.by_ref().collect();
    assert_eq!(walk.stop_reason(), Some(StopReason::EndOfStack));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].sp, 0x8058);
    assert_eq!(frames[1].get(X86_64::RBX), Some(0x99));
    assert_eq!(frames[1].get(X86_64::R9), None);
}
