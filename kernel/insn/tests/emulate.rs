//! The emulator's effects, instruction by instruction: device accesses,
//! register writes with the CPU's extension rules, string stepping with
//! DF and the address size, REP budgets, faults, and the RIP advance.

mod machine;

use machine::{Access, Dev, Guest};
use svsm_insn::{
    EmulateError, Gpr, Insn, MemFault, Mode, Outcome, SliceFetch, Width, decode, emulate,
};

const RIP: u64 = 0x40_1000;

fn insn(bytes: &[u8]) -> Insn {
    decode(&mut SliceFetch { base: RIP, bytes }, RIP, Mode::Long64).expect("decodes")
}

/// Decodes `bytes` at RIP and emulates them against `g` and `d`.
fn run(bytes: &[u8], g: &mut Guest, d: &mut Dev, max_reps: u64) -> Result<Outcome, EmulateError> {
    g.rip = RIP;
    emulate(&insn(bytes), g, d, max_reps)
}

fn guest() -> Guest {
    let mut g = Guest::default();
    g.gpr
        .iter_mut()
        .enumerate()
        .for_each(|(i, r)| *r = 0xdead_beef_0000_0000 | (i as u64 * 0x1111));
    g
}

#[test]
fn in_merges_al_and_ax_and_zero_extends_eax() {
    let (mut g, mut d) = (guest(), Dev::default());
    d.reads
        .extend([0x1234_5678_9abc, 0x1234_5678_9abc, 0x1234_5678_9abc]);
    let rax = g.gpr[0];
    run(&[0xE4, 0x71], &mut g, &mut d, 1).unwrap(); // in al, 0x71
    assert_eq!(g.gpr[0], (rax & !0xff) | 0xbc);
    assert_eq!(g.rip, RIP + 2);
    g.gpr[2] = 0xffff_0000_0000_03f8; // port in DX: only the low 16 bits count
    run(&[0x66, 0xED], &mut g, &mut d, 1).unwrap(); // in ax, dx
    assert_eq!(g.gpr[0], (rax & !0xffff) | 0x9abc);
    assert_eq!(g.rip, RIP + 2);
    run(&[0xED], &mut g, &mut d, 1).unwrap(); // in eax, dx
    assert_eq!(g.gpr[0], 0x5678_9abc);
    assert_eq!(
        d.log,
        [
            Access::IoRead(0x71, Width::W8),
            Access::IoRead(0x3f8, Width::W16),
            Access::IoRead(0x3f8, Width::W32)
        ]
    );
}

#[test]
fn out_writes_the_accumulator_at_its_width() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.gpr[0] = 0x1122_3344_5566_7788;
    g.gpr[2] = 0xcf8;
    run(&[0xE6, 0x80], &mut g, &mut d, 1).unwrap(); // out 0x80, al
    run(&[0x66, 0xEF], &mut g, &mut d, 1).unwrap(); // out dx, ax
    run(&[0x48, 0xEF], &mut g, &mut d, 1).unwrap(); // rex.w out dx, eax
    assert_eq!(
        d.log,
        [
            Access::IoWrite(0x80, Width::W8, 0x88),
            Access::IoWrite(0xcf8, Width::W16, 0x7788),
            Access::IoWrite(0xcf8, Width::W32, 0x5566_7788)
        ]
    );
    assert_eq!(g.gpr[0], 0x1122_3344_5566_7788, "OUT leaves RAX alone");
    assert_eq!(g.rip, RIP + 2);
}

#[test]
fn rep_outsb_steps_up_and_down_with_df() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.poke(0x5000, b"abcd");
    g.gpr[2] = 0x3f8;
    g.gpr[6] = 0x5000; // rsi
    g.gpr[1] = 4; // rcx
    assert_eq!(run(&[0xF3, 0x6E], &mut g, &mut d, 100), Ok(Outcome::Done));
    assert_eq!((g.gpr[6], g.gpr[1], g.rip), (0x5004, 0, RIP + 2));
    let out: Vec<u32> = d
        .log
        .iter()
        .map(|a| match a {
            Access::IoWrite(0x3f8, Width::W8, v) => *v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(out, [b'a', b'b', b'c', b'd'].map(u32::from));

    d.log.clear();
    g.rflags = 1 << 10; // DF
    g.gpr[6] = 0x5003;
    g.gpr[1] = 2;
    run(&[0xF3, 0x6E], &mut g, &mut d, 100).unwrap();
    assert_eq!(g.gpr[6], 0x5001);
    assert_eq!(
        d.log,
        [
            Access::IoWrite(0x3f8, Width::W8, u32::from(b'd')),
            Access::IoWrite(0x3f8, Width::W8, u32::from(b'c'))
        ]
    );
}

#[test]
fn rep_insw_budget_leaves_rip_for_the_rest() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.map(0x6000, 16);
    d.reads.extend([0x1111, 0x2222, 0x3333, 0x4444, 0x5555]);
    g.gpr[2] = 0x1f0;
    g.gpr[7] = 0x6000; // rdi
    g.gpr[1] = 5;
    let bytes = [0x66, 0xF3, 0x6D]; // rep insw
    assert_eq!(run(&bytes, &mut g, &mut d, 3), Ok(Outcome::Partial));
    assert_eq!((g.gpr[7], g.gpr[1], g.rip), (0x6006, 2, RIP));
    assert_eq!(emulate(&insn(&bytes), &mut g, &mut d, 3), Ok(Outcome::Done));
    assert_eq!((g.gpr[7], g.gpr[1], g.rip), (0x600a, 0, RIP + 3));
    assert_eq!(
        g.peek(0x6000, 10),
        [0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55]
    );
}

#[test]
fn rep_with_zero_count_does_nothing_but_advance() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.gpr[1] = 0;
    assert_eq!(run(&[0xF3, 0x6C], &mut g, &mut d, 8), Ok(Outcome::Done));
    assert!(d.log.is_empty());
    assert_eq!(g.rip, RIP + 2);
}

#[test]
fn address_size_32_uses_esi_ecx_and_zero_extends() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.poke(0x7000, &[1, 0, 0, 0, 2, 0, 0, 0]);
    g.gpr[6] = 0xffff_ffff_0000_7000; // RSI: the upper half must be ignored
    g.gpr[1] = 0xffff_ffff_0000_0002; // RCX: ECX = 2
    g.gpr[2] = 0x60;
    run(&[0x67, 0xF3, 0x6F], &mut g, &mut d, 10).unwrap(); // rep outsd, addr32
    assert_eq!(
        d.log,
        [
            Access::IoWrite(0x60, Width::W32, 1),
            Access::IoWrite(0x60, Width::W32, 2)
        ]
    );
    assert_eq!((g.gpr[6], g.gpr[1]), (0x7008, 0));
}

#[test]
fn memory_fault_mid_rep_keeps_progress_and_rip() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.poke(0x8ffe, &[7, 8]); // 0x9000 is not mapped
    g.gpr[6] = 0x8ffe;
    g.gpr[1] = 4;
    let r = run(&[0xF3, 0x6E], &mut g, &mut d, 10);
    assert_eq!(r, Err(EmulateError::Memory(MemFault { addr: 0x9000 })));
    assert_eq!((g.gpr[6], g.gpr[1], g.rip), (0x9000, 2, RIP));
    assert_eq!(d.log.len(), 2);
}

#[test]
fn device_error_leaves_rip() {
    let (mut g, mut d) = (guest(), Dev::default());
    d.broken = Some(0x42);
    assert!(matches!(
        run(&[0xE4, 0x42], &mut g, &mut d, 1),
        Err(EmulateError::Device(_))
    ));
    assert_eq!(g.rip, RIP);
}

#[test]
fn mmio_store_forms() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.gpr[3] = 0xfee0_0000; // rbx
    g.gpr[0] = 0x8877_6655_4433_2211;
    run(&[0x89, 0x83, 0xB0, 0x00, 0x00, 0x00], &mut g, &mut d, 1).unwrap(); // mov [rbx+0xb0], eax
    run(&[0x48, 0x89, 0x03], &mut g, &mut d, 1).unwrap(); // mov [rbx], rax
    run(&[0x88, 0x63, 0x10], &mut g, &mut d, 1).unwrap(); // mov [rbx+0x10], ah
    run(
        &[0x48, 0xC7, 0x43, 0x20, 0xFE, 0xFF, 0xFF, 0xFF],
        &mut g,
        &mut d,
        1,
    )
    .unwrap(); // mov qword [rbx+0x20], -2
    run(&[0x66, 0xC7, 0x03, 0x34, 0x12], &mut g, &mut d, 1).unwrap(); // mov word [rbx], 0x1234
    assert_eq!(
        d.log,
        [
            Access::MmioWrite(0xfee0_00b0, Width::W32, 0x4433_2211),
            Access::MmioWrite(0xfee0_0000, Width::W64, 0x8877_6655_4433_2211),
            Access::MmioWrite(0xfee0_0010, Width::W8, 0x22),
            Access::MmioWrite(0xfee0_0020, Width::W64, 0xffff_ffff_ffff_fffe),
            Access::MmioWrite(0xfee0_0000, Width::W16, 0x1234),
        ]
    );
    assert_eq!(g.rip, RIP + 5);
}

#[test]
fn mmio_load_forms_extend_as_the_cpu_does() {
    let (mut g, mut d) = (guest(), Dev::default());
    let rcx = g.gpr[1];
    d.reads.extend([0x8080_8080_8080_8080; 6]);
    let rip_rel = [0x8B, 0x0D, 0x00, 0x10, 0x00, 0x00]; // mov ecx, [rip+0x1000]
    run(&rip_rel, &mut g, &mut d, 1).unwrap();
    assert_eq!(g.gpr[1], 0x8080_8080, "32-bit load zero-extends");
    assert_eq!(d.log[0], Access::MmioRead(RIP + 6 + 0x1000, Width::W32));
    g.gpr[1] = rcx;
    run(&[0x66, 0x8B, 0x08], &mut g, &mut d, 1).unwrap(); // mov cx, [rax]
    assert_eq!(g.gpr[1], (rcx & !0xffff) | 0x8080, "16-bit load merges");
    run(&[0x8A, 0x28], &mut g, &mut d, 1).unwrap(); // mov ch, [rax]
    assert_eq!(g.gpr[1] & 0xffff, 0x8080);
    run(&[0x48, 0x0F, 0xBE, 0x08], &mut g, &mut d, 1).unwrap(); // movsx rcx, byte [rax]
    assert_eq!(g.gpr[1], 0xffff_ffff_ffff_ff80);
    run(&[0x0F, 0xB7, 0x08], &mut g, &mut d, 1).unwrap(); // movzx ecx, word [rax]
    assert_eq!(g.gpr[1], 0x8080);
    run(&[0x0F, 0xBF, 0x08], &mut g, &mut d, 1).unwrap(); // movsx ecx, word [rax]
    assert_eq!(g.gpr[1], 0xffff_8080, "32-bit destination zero-extends");
    assert_eq!(g.rip, RIP + 3);
}

#[test]
fn fs_override_adds_the_segment_base() {
    let (mut g, mut d) = (guest(), Dev::default());
    g.fs_base = 0x1_0000_0000;
    g.gpr[3] = 0x20;
    run(&[0x64, 0x8B, 0x03], &mut g, &mut d, 1).unwrap(); // mov eax, fs:[rbx]
    assert_eq!(d.log, [Access::MmioRead(0x1_0000_0020, Width::W32)]);
}

#[test]
fn exit_instructions_are_left_to_the_caller() {
    let cases: [(&[u8], usize); 6] = [
        (&[0x0F, 0xA2], 2),             // cpuid
        (&[0x0F, 0x32], 2),             // rdmsr
        (&[0x0F, 0x30], 2),             // wrmsr
        (&[0x0F, 0x01, 0xD9], 3),       // vmmcall
        (&[0xF3, 0x0F, 0x01, 0xD9], 4), // vmgexit
        (&[0x2E, 0x0F, 0xA2], 3),       // prefixed cpuid
    ];
    for (bytes, len) in cases {
        let i = insn(bytes);
        assert_eq!(usize::from(i.len), len, "{bytes:02x?}");
        let (mut g, mut d) = (guest(), Dev::default());
        assert_eq!(
            run(bytes, &mut g, &mut d, 1),
            Err(EmulateError::NotEmulated)
        );
        assert_eq!(g.rip, RIP);
    }
}

#[test]
fn ip_wraps_outside_64_bit_mode() {
    struct Guest32(Guest);
    impl svsm_insn::GuestState for Guest32 {
        fn gpr(&self, r: Gpr) -> u64 {
            self.0.gpr(r)
        }
        fn set_gpr(&mut self, r: Gpr, v: u64) {
            self.0.set_gpr(r, v)
        }
        fn rip(&self) -> u64 {
            self.0.rip
        }
        fn set_rip(&mut self, v: u64) {
            self.0.rip = v
        }
        fn rflags(&self) -> u64 {
            0
        }
        fn segment_base(&self, _: svsm_insn::Segment) -> u64 {
            0
        }
        fn ip_width(&self) -> Width {
            Width::W32
        }
        fn read_memory(&mut self, a: u64, b: &mut [u8]) -> Result<(), MemFault> {
            self.0.read_memory(a, b)
        }
        fn write_memory(&mut self, a: u64, b: &[u8]) -> Result<(), MemFault> {
            self.0.write_memory(a, b)
        }
    }
    let bytes = [0xE4, 0x10];
    let i = decode(
        &mut SliceFetch {
            base: 0xffff_fffe,
            bytes: &bytes,
        },
        0xffff_fffe,
        Mode::Protected32,
    )
    .unwrap();
    let mut g = Guest32(guest());
    g.0.rip = 0xffff_fffe;
    emulate(&i, &mut g, &mut Dev::default(), 1).unwrap();
    assert_eq!(g.0.rip, 0);
}

#[test]
fn ioio_exit_information_cross_check() {
    // rep outsb (DS), port DX = 0x3f8, 64-bit addressing.
    let io = insn(&[0xF3, 0x6E]).io_access().unwrap();
    assert_eq!(io.exit_info1(0x3f8), 0x03f8_0e1c);
    let next = RIP + 2;
    assert!(
        io.matches_exit(0x3f8, 0x03f8_0e1c, next, next),
        "with decode assists"
    );
    assert!(
        io.matches_exit(0x3f8, 0x03f8_021c, next, next),
        "without the segment field"
    );
    assert!(
        !io.matches_exit(0x3f8, 0x03f8_0a1c, next, next),
        "wrong segment (SS)"
    );
    assert!(
        !io.matches_exit(0x3f9, 0x03f8_021c, next, next),
        "wrong port"
    );
    assert!(
        !io.matches_exit(0x3f8, 0x03f8_020c, next, next),
        "wrong size"
    );
    assert!(
        !io.matches_exit(0x3f8, 0x03f8_021c, next, next + 1),
        "wrong next RIP"
    );
    // in ax, 0x60 with a 32-bit address size: DX does not matter.
    let io = insn(&[0x67, 0x66, 0xE5, 0x60]).io_access().unwrap();
    assert_eq!(io.exit_info1(0xffff), 0x0060_0121);
    assert!(insn(&[0x89, 0x03]).io_access().is_none());
}
