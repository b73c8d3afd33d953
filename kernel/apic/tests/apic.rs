//! The emulated x2APIC and the APIC protocol calls, through the same
//! register interface the guest uses.

mod common;

use svsm_apic::protocol::{
    CONFIGURE, CONFIGURE_VECTOR, ERR_CANNOT_DISABLE, ERR_CANNOT_LOCK, QUERY_FEATURES,
    READ_REGISTER, WRITE_REGISTER,
};
use svsm_apic::{
    CallError, Emulation, GuestApic, Ipi, IpiDest, LevelEoi, LocalApic, RegisterError, handle_call,
    regs,
};
use svsm_testkit::Rng;

fn enabled(id: u32) -> LocalApic {
    let mut a = LocalApic::new(id);
    a.write(regs::SVR, u64::from(regs::SVR_ENABLE | 0xFF), 0)
        .unwrap();
    a
}

fn write(g: &mut GuestApic, reg: u32, v: u64) -> Result<Option<Ipi>, CallError> {
    handle_call(g, WRITE_REGISTER, u64::from(reg), v, 0).map(|o| o.ipi)
}

fn read(g: &mut GuestApic, reg: u32) -> Result<u64, CallError> {
    handle_call(g, READ_REGISTER, u64::from(reg), 0, 0).map(|o| o.rdx.unwrap())
}

#[test]
fn reset_state_and_identity_registers() {
    let mut g = GuestApic::new(0x23);
    assert_eq!(read(&mut g, regs::ID), Ok(0x23));
    assert_eq!(read(&mut g, regs::VERSION), Ok(0x0005_0014));
    assert_eq!(read(&mut g, regs::LDR), Ok((2 << 16) | (1 << 3)));
    assert_eq!(read(&mut g, regs::SVR), Ok(0xFF));
    assert_eq!(
        read(&mut g, regs::LVT_TIMER),
        Ok(u64::from(regs::LVT_MASKED))
    );
    // Software-disabled: a self-IPI is not accepted.
    write(&mut g, regs::SELF_IPI, 0x40).unwrap();
    assert_eq!(read(&mut g, regs::IRR0 + 2), Ok(0));
    write(&mut g, regs::SVR, 0x1FF).unwrap();
    write(&mut g, regs::SELF_IPI, 0x40).unwrap();
    assert_eq!(read(&mut g, regs::IRR0 + 2), Ok(1));
    assert_eq!(g.apic.pending_interrupt(), Some(0x40));
}

#[test]
fn read_only_write_only_unknown_and_reserved_are_invalid_parameter() {
    let mut g = GuestApic::new(1);
    let read_only = [
        regs::ID,
        regs::VERSION,
        regs::PPR,
        regs::LDR,
        regs::ISR0,
        regs::ISR7,
        regs::TMR0,
        regs::TMR7,
        regs::IRR0,
        regs::IRR7,
        regs::TIMER_CURRENT_COUNT,
    ];
    for reg in read_only {
        assert_eq!(g.apic.write(reg, 0, 0), Err(RegisterError::ReadOnly(reg)));
        assert_eq!(write(&mut g, reg, 0), Err(CallError::InvalidParameter));
    }
    for reg in [regs::EOI, regs::SELF_IPI] {
        assert_eq!(g.apic.read(reg, 0), Err(RegisterError::WriteOnly(reg)));
        assert_eq!(read(&mut g, reg), Err(CallError::InvalidParameter));
    }
    for reg in [0x800u64, 0x804, 0x831, 0x83A, 0x840, 0x1B, 1 << 32] {
        assert_eq!(
            handle_call(&mut g, READ_REGISTER, reg, 0, 0),
            Err(CallError::InvalidParameter)
        );
    }
    assert_eq!(
        g.apic.write(regs::TPR, 0x100, 0),
        Err(RegisterError::Reserved(regs::TPR))
    );
    assert_eq!(
        g.apic.write(regs::EOI, 1, 0),
        Err(RegisterError::Reserved(regs::EOI))
    );
    assert_eq!(
        g.apic.write(regs::SVR, 0x1000, 0),
        Err(RegisterError::Reserved(regs::SVR))
    );
    assert_eq!(
        g.apic
            .write(regs::LVT_TIMER, u64::from(regs::LVT_TIMER_TSC_DEADLINE), 0),
        Err(RegisterError::Unsupported(regs::LVT_TIMER))
    );
}

#[test]
fn priority_selection_tpr_and_nesting() {
    let mut a = enabled(0);
    for v in [0x31, 0x52, 0x58, 0x91] {
        assert!(a.post_ipi(v));
    }
    assert_eq!(a.pending_interrupt(), Some(0x91));
    a.write(regs::TPR, 0x90, 0).unwrap();
    assert_eq!(a.pending_interrupt(), None, "class 9 not above TPR class 9");
    a.write(regs::TPR, 0x8F, 0).unwrap();
    assert!(a.acknowledge(0x91));
    assert_eq!(a.read(regs::PPR, 0), Ok(0x90));
    assert_eq!(a.read(regs::ISR0 + 4, 0), Ok(1 << 17));
    assert_eq!(
        a.pending_interrupt(),
        None,
        "0x58 below the in-service class"
    );
    a.write(regs::TPR, 0, 0).unwrap();
    assert!(
        !a.acknowledge(0x52),
        "only the pending vector can be acknowledged"
    );
    assert_eq!(a.write(regs::EOI, 0, 0), Ok(None));
    assert_eq!(a.pending_interrupt(), Some(0x58));
    assert!(a.acknowledge(0x58));
    assert!(a.post_ipi(0xA0));
    assert_eq!(a.pending_interrupt(), Some(0xA0), "higher class nests");
    assert!(a.acknowledge(0xA0));
    a.eoi();
    assert_eq!(
        a.read(regs::ISR0 + 2, 0),
        Ok(1 << 24),
        "EOI retired 0xA0, 0x58 still in service"
    );
    a.eoi();
    assert_eq!(a.pending_interrupt(), Some(0x52));
}

#[test]
fn host_interrupts_need_the_allow_list_and_never_0_to_30() {
    let mut g = GuestApic::new(0);
    write(&mut g, regs::SVR, 0x1FF).unwrap();
    assert!(!g.apic.post_host_interrupt(0x80, false), "not allowed yet");
    assert_eq!(g.apic.pending_interrupt(), None);
    handle_call(&mut g, CONFIGURE_VECTOR, 0x180, 0, 0).unwrap();
    assert!(g.apic.post_host_interrupt(0x80, true));
    assert_eq!(g.apic.pending_interrupt(), Some(0x80));
    handle_call(&mut g, CONFIGURE_VECTOR, 0x080, 0, 0).unwrap();
    assert!(!g.apic.post_host_interrupt(0x81, false));
    for v in 0..31u64 {
        assert_eq!(
            handle_call(&mut g, CONFIGURE_VECTOR, 0x100 | v, 0, 0),
            Err(CallError::InvalidParameter)
        );
        assert!(!g.apic.post_host_interrupt(v as u8, false));
        assert!(!g.apic.post_ipi(v as u8));
        assert_eq!(
            write(&mut g, regs::SELF_IPI, v),
            Err(CallError::InvalidParameter)
        );
    }
    handle_call(&mut g, CONFIGURE_VECTOR, 31 | 0x100, 0, 0).unwrap();
    assert_eq!(
        handle_call(&mut g, CONFIGURE_VECTOR, 0x200, 0, 0),
        Err(CallError::InvalidParameter)
    );
    // A level-triggered host interrupt: its EOI goes back to the caller.
    assert!(g.apic.acknowledge(0x80));
    assert_eq!(read(&mut g, regs::TMR0 + 4), Ok(1));
    assert_eq!(g.apic.eoi(), Some(LevelEoi(0x80)));
    assert_eq!(read(&mut g, regs::TMR0 + 4), Ok(0));
}

#[test]
fn icr_ipis_become_requests() {
    let mut g = GuestApic::new(0x11);
    write(&mut g, regs::SVR, 0x1FF).unwrap();
    let fixed = |v: u64, dest: u32| v | (u64::from(dest) << 32);
    // Physical, to another vCPU: a request, nothing local.
    let ipi = write(&mut g, regs::ICR, fixed(0x41, 2)).unwrap();
    assert_eq!(
        ipi,
        Some(Ipi {
            dest: IpiDest::Physical(2),
            vector: 0x41,
            nmi: false
        })
    );
    assert_eq!(read(&mut g, regs::ICR), Ok(fixed(0x41, 2)));
    assert_eq!(g.apic.pending_interrupt(), None);
    // Physical, to itself: local only.
    assert_eq!(write(&mut g, regs::ICR, fixed(0x42, 0x11)), Ok(None));
    assert_eq!(g.apic.pending_interrupt(), Some(0x42));
    // Shorthands.
    assert_eq!(write(&mut g, regs::ICR, 0x43 | (1 << 18)), Ok(None));
    let all = write(&mut g, regs::ICR, 0x44 | (2 << 18)).unwrap().unwrap();
    assert_eq!((all.dest, all.vector), (IpiDest::AllButSelf, 0x44));
    let others = write(&mut g, regs::ICR, 0x45 | (3 << 18)).unwrap().unwrap();
    assert_eq!(others.dest, IpiDest::AllButSelf);
    assert_eq!(
        g.apic.read(regs::IRR0 + 2, 0),
        Ok(0b111 << 2),
        "0x42..0x44 local, 0x45 not"
    );
    // Logical: cluster 1, member bit 1 is this vCPU (ID 0x11).
    let l = write(&mut g, regs::ICR, fixed(0x50 | (1 << 11), 0x0001_0002))
        .unwrap()
        .unwrap();
    assert_eq!(l.dest, IpiDest::Logical(0x0001_0002));
    assert!(g.apic.read(regs::IRR0 + 2, 0).unwrap() & (1 << 16) != 0);
    assert!(
        enabled(0x11).accepts(l.dest)
            && !enabled(0x12).accepts(l.dest)
            && !enabled(0x01).accepts(l.dest)
    );
    // NMI.
    let n = write(&mut g, regs::ICR, fixed(0x400, 5)).unwrap().unwrap();
    assert!(n.nmi);
    // Refused: INIT, level-triggered fixed, reserved bits, vectors below 31.
    for bad in [0x500, 0x8041 | (1 << 14), 0x41 | (1 << 13), fixed(0x10, 2)] {
        assert_eq!(
            write(&mut g, regs::ICR, bad),
            Err(CallError::InvalidParameter),
            "{bad:#x}"
        );
    }
}

#[test]
fn timer_one_shot_periodic_and_masked() {
    let mut a = enabled(0);
    a.write(regs::TIMER_DIVIDE, 0b1011, 0).unwrap(); // divide by 1
    a.write(regs::LVT_TIMER, 0x60, 0).unwrap();
    a.write(regs::TIMER_INITIAL_COUNT, 1000, 5_000).unwrap();
    assert_eq!(a.read(regs::TIMER_CURRENT_COUNT, 5_400), Ok(600));
    assert_eq!(a.next_timer_deadline(), Some(6_000));
    assert!(!a.poll_timer(5_999));
    assert!(a.poll_timer(6_000));
    assert_eq!(a.pending_interrupt(), Some(0x60));
    assert!(a.acknowledge(0x60));
    a.eoi();
    assert!(!a.poll_timer(9_000), "one-shot fires once");

    a.write(
        regs::LVT_TIMER,
        0x61 | u64::from(regs::LVT_TIMER_PERIODIC),
        9_000,
    )
    .unwrap();
    a.write(regs::TIMER_INITIAL_COUNT, 100, 10_000).unwrap();
    let mut delivered = 0;
    for now in (10_000..11_000).step_by(10) {
        if a.poll_timer(now) && a.pending_interrupt() == Some(0x61) {
            assert!(a.acknowledge(0x61));
            a.eoi();
            delivered += 1;
        }
    }
    assert_eq!(delivered, 9, "periods ending at 10100..=10900");
    a.write(
        regs::LVT_TIMER,
        0x61 | u64::from(regs::LVT_MASKED | regs::LVT_TIMER_PERIODIC),
        11_000,
    )
    .unwrap();
    assert!(a.poll_timer(11_000));
    assert_eq!(
        a.pending_interrupt(),
        None,
        "masked: expires, delivers nothing"
    );
}

#[test]
fn lazy_eoi_through_the_calling_area_byte() {
    let mut a = enabled(0);
    a.post_ipi(0x70);
    assert!(a.acknowledge(0x70));
    assert_eq!(a.present_no_eoi_required(), 1);
    // The guest handled it and cleared the byte instead of writing EOI.
    assert_eq!(a.sync_no_eoi_required(0), None);
    assert_eq!(a.read(regs::ISR0 + 3, 0), Ok(0), "retired by the lazy EOI");
    assert_eq!(a.present_no_eoi_required(), 0);

    // Not yet handled (byte still 1): nothing retired.
    a.post_ipi(0x70);
    assert!(a.acknowledge(0x70));
    assert_eq!(a.present_no_eoi_required(), 1);
    a.sync_no_eoi_required(1);
    assert_eq!(a.read(regs::ISR0 + 3, 0), Ok(1 << 16));
    // Another interrupt arrives: the byte is withdrawn, the guest must EOI,
    // and a 0 the SVSM itself wrote is not taken for a lazy EOI.
    a.post_ipi(0x30);
    assert_eq!(a.present_no_eoi_required(), 0);
    a.sync_no_eoi_required(0);
    assert_eq!(a.read(regs::ISR0 + 3, 0), Ok(1 << 16));
    a.write(regs::EOI, 0, 0).unwrap();
    assert_eq!(a.pending_interrupt(), Some(0x30));

    // Level-triggered or nested: never lazy.
    let mut g = GuestApic::new(0);
    write(&mut g, regs::SVR, 0x1FF).unwrap();
    handle_call(&mut g, CONFIGURE_VECTOR, 0x1A0, 0, 0).unwrap();
    g.apic.post_host_interrupt(0xA0, true);
    assert!(g.apic.acknowledge(0xA0));
    assert_eq!(g.apic.present_no_eoi_required(), 0);
}

#[test]
fn configure_transitions_and_calls_while_disabled() {
    let mut g = GuestApic::new(0);
    assert_eq!(
        handle_call(&mut g, QUERY_FEATURES, 0, 0, 0).unwrap().rcx,
        Some(0)
    );
    handle_call(&mut g, CONFIGURE, 0, 0, 0).unwrap();
    assert_eq!(g.emulation, Emulation::Disabled);
    assert_eq!(read(&mut g, regs::ID), Err(CallError::InvalidRequest));
    assert_eq!(
        handle_call(&mut g, CONFIGURE_VECTOR, 0x140, 0, 0),
        Err(CallError::InvalidRequest)
    );
    assert_eq!(
        handle_call(&mut g, CONFIGURE, 2, 0, 0),
        Err(CallError::Protocol(ERR_CANNOT_LOCK))
    );
    handle_call(&mut g, CONFIGURE, 1, 0, 0).unwrap();
    handle_call(&mut g, CONFIGURE, 2, 0, 0).unwrap();
    assert_eq!(
        handle_call(&mut g, CONFIGURE, 0, 0, 0),
        Err(CallError::Protocol(ERR_CANNOT_DISABLE))
    );
    handle_call(&mut g, CONFIGURE, 1, 0, 0).unwrap();
    assert_eq!(g.emulation, Emulation::Locked, "enable does not unlock");
    assert_eq!(
        handle_call(&mut g, CONFIGURE, 3, 0, 0),
        Err(CallError::InvalidParameter)
    );
    assert_eq!(
        handle_call(&mut g, 5, 0, 0, 0),
        Err(CallError::UnsupportedCall)
    );
}

#[test]
fn random_operation_sequences_keep_the_invariants() {
    let mut rng = Rng::new(0xa91c);
    let mut data = vec![0u8; 512];
    for _ in 0..3000 {
        data.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        common::run_ops(&data);
    }
}
