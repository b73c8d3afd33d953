//! The exception vectors: their names, which IST slot each runs on, and
//! the IDT gates that send each to its entry stub.

use svsm_defs::desc::{Gate, KERNEL_CS};

/// Exception vectors with an entry stub (the architectural ones).
pub const NUM_VECTORS: usize = 32;

pub const VEC_NMI: u64 = 2;
pub const VEC_DF: u64 = 8;
pub const VEC_PF: u64 = 14;
pub const VEC_MC: u64 = 18;
pub const VEC_VC: u64 = 29;

/// IST slots (1-based in a gate, 0-based in `Tss::ist`).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_PAGE_FAULT: u8 = 2;
pub const IST_NMI: u8 = 3;
pub const IST_MACHINE_CHECK: u8 = 4;
pub const IST_VMM_COMMUNICATION: u8 = 5;

const NAMES: [&str; NUM_VECTORS] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization exception",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved",
];

pub fn vector_name(vector: u64) -> &'static str {
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("unknown")
}

/// Which IST slot a vector uses (0 = the interrupted stack).
pub fn ist_for_vector(vector: usize) -> u8 {
    match vector as u64 {
        VEC_NMI => IST_NMI,
        VEC_DF => IST_DOUBLE_FAULT,
        VEC_PF => IST_PAGE_FAULT,
        VEC_MC => IST_MACHINE_CHECK,
        VEC_VC => IST_VMM_COMMUNICATION,
        _ => 0,
    }
}

/// The IDT's gates: vector `v` to `stub(v)` through the kernel code
/// selector; with `use_ist`, NMI, #DF, #PF, #MC and #VC on their IST stacks,
/// otherwise (before the IST stacks exist) every vector on the interrupted
/// stack.
pub fn gates(stub: impl Fn(usize) -> u64, use_ist: bool) -> [Gate; NUM_VECTORS] {
    core::array::from_fn(|v| {
        let ist = if use_ist { ist_for_vector(v) } else { 0 };
        Gate::interrupt(stub(v), KERNEL_CS, ist)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(vector_name(14), "#PF page fault");
        assert_eq!(vector_name(29), "#VC VMM communication");
        assert_eq!(vector_name(32), "unknown");
        assert_eq!(vector_name(u64::MAX), "unknown");
    }

    #[test]
    fn gates_point_at_their_stubs_with_the_right_stacks() {
        let stub = |v: usize| 0xffff_ffff_8000_1000 + 16 * v as u64;
        let g = gates(stub, true);
        for (v, gate) in g.iter().enumerate() {
            assert_eq!(gate.handler(), stub(v));
            assert_eq!(gate.selector(), KERNEL_CS);
            assert!(gate.is_present());
        }
        let on_ist: Vec<(usize, u8)> = g
            .iter()
            .enumerate()
            .filter(|(_, g)| g.ist() != 0)
            .map(|(v, g)| (v, g.ist()))
            .collect();
        assert_eq!(
            on_ist,
            [
                (2, IST_NMI),
                (8, IST_DOUBLE_FAULT),
                (14, IST_PAGE_FAULT),
                (18, IST_MACHINE_CHECK),
                (29, IST_VMM_COMMUNICATION)
            ]
        );
        // Before the IST stacks exist no gate may name one.
        assert!(gates(stub, false).iter().all(|g| g.ist() == 0));
    }
}
