//! An interpreter of byte-coded operations on one vCPU's APIC, checking
//! the model's invariants after each: shared by the randomized test and the
//! fuzz target (kernel/apic/fuzz), whose committed corpus `make test`
//! replays.

#![allow(dead_code)]

use svsm_apic::protocol::{self, CONFIGURE_VECTOR, READ_REGISTER, WRITE_REGISTER};
use svsm_apic::{CallError, Emulation, FIRST_INJECTABLE, GuestApic, handle_call, regs};

/// The registers an operation picks from (plus a few that do not exist).
const REGS: [u32; 32] = [
    regs::ID,
    regs::VERSION,
    regs::TPR,
    regs::PPR,
    regs::EOI,
    regs::LDR,
    regs::SVR,
    regs::ISR0,
    regs::ISR7,
    regs::TMR0,
    regs::IRR0,
    regs::IRR7,
    regs::ESR,
    regs::LVT_CMCI,
    regs::ICR,
    regs::LVT_TIMER,
    regs::LVT_THERMAL,
    regs::LVT_LINT0,
    regs::LVT_ERROR,
    regs::TIMER_INITIAL_COUNT,
    regs::TIMER_CURRENT_COUNT,
    regs::TIMER_DIVIDE,
    regs::SELF_IPI,
    0x800,
    0x801,
    0x804,
    0x809,
    0x831,
    0x83A,
    0x840,
    0x1B,
    0xFFFF_FFFF,
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u64(&mut self) -> Option<u64> {
        let n = usize::from(self.u8()? % 9);
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 8) | u64::from(self.u8()?);
        }
        Some(v)
    }
}

/// Runs the operations `data` encodes; panics on a broken invariant.
pub fn run_ops(data: &[u8]) {
    let mut g = GuestApic::new(3);
    let mut now = 0u64;
    let mut b = Bytes(data);
    while let Some(op) = b.u8() {
        let Some(arg) = b.u8() else { break };
        match op % 10 {
            0 => {
                let _ = handle_call(
                    &mut g,
                    READ_REGISTER,
                    u64::from(REGS[usize::from(arg % 32)]),
                    0,
                    now,
                );
            }
            1 | 2 => {
                let Some(v) = b.u64() else { break };
                let reg = REGS[usize::from(arg % 32)];
                let r = handle_call(&mut g, WRITE_REGISTER, u64::from(reg), v, now);
                if let Ok(out) = r
                    && let Some(ipi) = out.ipi
                {
                    assert!(ipi.nmi || ipi.vector >= FIRST_INJECTABLE);
                }
            }
            3 => {
                let disabled = g.emulation == Emulation::Disabled;
                match handle_call(&mut g, CONFIGURE_VECTOR, u64::from(arg) | 0x100, 0, now) {
                    Ok(_) => assert!(!disabled && arg >= FIRST_INJECTABLE),
                    Err(CallError::InvalidRequest) => assert!(disabled),
                    Err(e) => assert!(arg < FIRST_INJECTABLE && e == CallError::InvalidParameter),
                }
            }
            4 => {
                let before = g.apic.read(regs::IRR0 + u32::from(arg >> 5), now).ok();
                let accepted = g.apic.post_host_interrupt(arg, arg & 1 == 0);
                if !g.apic.is_allowed(arg) {
                    assert!(!accepted);
                    assert_eq!(
                        g.apic.read(regs::IRR0 + u32::from(arg >> 5), now).ok(),
                        before
                    );
                }
            }
            5 => now = now.saturating_add(u64::from(arg) * 16),
            6 => {
                g.apic.poll_timer(now);
                if let Some(d) = g.apic.next_timer_deadline() {
                    assert!(d > now, "deadline {d} not after {now}");
                }
            }
            7 => {
                if let Some(v) = g.apic.pending_interrupt() {
                    assert!(g.apic.acknowledge(v));
                }
                assert!(!g.apic.acknowledge(arg) || arg >= FIRST_INJECTABLE);
            }
            8 => {
                let byte = g.apic.present_no_eoi_required();
                assert!(byte <= 1);
                g.apic
                    .sync_no_eoi_required(if arg & 1 == 0 { 0 } else { byte });
            }
            _ => {
                let r = handle_call(&mut g, protocol::CONFIGURE, u64::from(arg % 4), 0, now);
                if let Err(e) = r {
                    assert!(matches!(
                        e,
                        CallError::Protocol(0)
                            | CallError::Protocol(1)
                            | CallError::InvalidParameter
                    ));
                }
            }
        }
        check(&g, now);
    }
}

fn check(g: &GuestApic, now: u64) {
    let a = &g.apic;
    // Vectors 0..=30 are never requested, in service or pending.
    for base in [regs::IRR0, regs::ISR0, regs::TMR0] {
        let low = a.read(base, now).unwrap();
        assert_eq!(
            low & 0x7FFF_FFFF,
            0,
            "vector below 31 in {base:#x}: {low:#x}"
        );
    }
    if let Some(v) = a.pending_interrupt() {
        assert!(v >= FIRST_INJECTABLE);
        let ppr = a.read(regs::PPR, now).unwrap() as u8;
        assert!(v >> 4 > ppr >> 4, "pending {v:#x} not above PPR {ppr:#x}");
        let irr = a.read(regs::IRR0 + u32::from(v >> 5), now).unwrap();
        assert!(irr & (1 << (v & 31)) != 0);
    }
    let current = a.read(regs::TIMER_CURRENT_COUNT, now).unwrap();
    let initial = a.read(regs::TIMER_INITIAL_COUNT, now).unwrap();
    assert!(
        current <= initial,
        "current {current} above initial {initial}"
    );
}
