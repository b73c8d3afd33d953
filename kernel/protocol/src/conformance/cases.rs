//! The cases. Scratch layout: a list page at 0, 4 KiB target pages T1 and
//! T2, a VMSA page, a second Calling Area, a page to deposit, a withdraw
//! list, and a 2 MiB page H at 2 MiB.

use super::{CallStep, Case, Expect, Loc, Reg, Step, Val};
use svsm_defs::svsm::core_call::*;
use svsm_defs::svsm::{call_rax, result::*};

const LIST: u64 = 0;
const T1: u64 = 0x1000;
const T2: u64 = 0x2000;
const V: u64 = 0x3000;
const C2: u64 = 0x4000;
const D: u64 = 0x5000;
const W: u64 = 0x6000;
const H: u64 = 0x20_0000;

const SIZE_2M: u64 = 1;
const VALIDATE: u64 = 4;
const IGNORE_CF: u64 = 8;

const Z: Val = Val::Imm(0);
const UNCHANGED: u64 = 0x8000_1010;
const SIZEMISMATCH: u64 = 0x8000_1006;

const fn imm(v: u64) -> Val {
    Val::Imm(v)
}
const fn sc(o: u64) -> Loc {
    Loc::Scratch(o)
}
const fn at(l: Loc) -> Val {
    Val::At(l)
}
const fn entry(o: u64, flags: u64) -> Val {
    Val::AtOr(Loc::Scratch(o), flags)
}
/// RAX as given; RCX, RDX and R8 unchanged.
const fn same(rax: u64) -> Expect {
    Expect {
        rax,
        rcx: Reg::Same,
        rdx: Reg::Same,
        r8: Reg::Same,
    }
}
const fn call(rax: u64, rcx: Val, rdx: Val, r8: Val, expect: Expect) -> Step {
    Step::Call(CallStep {
        rax,
        rcx,
        rdx,
        r8,
        r9: Z,
        expect,
    })
}
const fn core(c: u32, rcx: Val, rdx: Val, r8: Val, rax: u64) -> Step {
    call(call_rax(0, c), rcx, rdx, r8, same(rax))
}
const fn core1(c: u32, rcx: Val, rax: u64) -> Step {
    core(c, rcx, Z, Z, rax)
}
const fn query(rcx: u64, out: u64) -> Step {
    call(
        call_rax(0, QUERY_PROTOCOL),
        imm(rcx),
        Z,
        Z,
        Expect {
            rax: SUCCESS,
            rcx: Reg::Is(Val::Imm(out)),
            rdx: Reg::Same,
            r8: Reg::Same,
        },
    )
}
const fn header(o: u64, entries: u16, next: u16) -> Step {
    Step::ListHeader {
        at: sc(o),
        entries,
        next,
    }
}
/// A one-entry list at LIST.
const fn entry0(val: Val) -> Step {
    Step::WriteU64 {
        at: sc(LIST + 8),
        val,
    }
}
const fn expect_next(o: u64, next: &'static [u8]) -> Step {
    Step::ExpectBytes {
        at: sc(o + 2),
        bytes: next,
    }
}
const fn pvalidate(list: Loc, rax: u64) -> Step {
    core1(PVALIDATE, at(list), rax)
}
const fn create(vmsa: Val, caa: Val, rax: u64) -> Step {
    core(CREATE_VCPU, vmsa, caa, Val::ApicIdOr(0), rax)
}
/// Invalidates (flags 0) or validates (VALIDATE) the 512 4 KiB pages of H
/// with two lists at LIST.
macro_rules! h_4k {
    ($flags:expr) => {
        [
            header(LIST, 511, 0),
            Step::Entries {
                at: sc(LIST + 8),
                first: sc(H),
                count: 511,
                stride: 0x1000,
                flags: $flags,
            },
            pvalidate(sc(LIST), SUCCESS),
            header(LIST, 1, 0),
            entry0(entry(H + 511 * 0x1000, $flags)),
            pvalidate(sc(LIST), SUCCESS),
        ]
    };
}
const H_INVALIDATE: [Step; 6] = h_4k!(0);
const H_VALIDATE: [Step; 6] = h_4k!(VALIDATE);

macro_rules! case {
    ($name:literal, $call:literal, [$($s:expr),* $(,)?]) => {
        Case { name: $name, call: $call, steps: &[$($s),*] }
    };
}

/// Every case, in the order they run (each leaves the scratch region as it
/// found it: validated 4 KiB pages, guest-accessible).
pub static CASES: &[Case] = &[
    case!(
        "unknown_protocol",
        "dispatch",
        [call(call_rax(9, 0), Z, Z, Z, same(UNSUPPORTED_PROTOCOL))]
    ),
    case!(
        "protocol_not_provided_vtpm",
        "dispatch",
        [call(call_rax(2, 0), Z, Z, Z, same(UNSUPPORTED_PROTOCOL))]
    ),
    case!(
        "core_unknown_call",
        "dispatch",
        [
            core1(8, Z, UNSUPPORTED_CALL),
            core1(0xffff_ffff, Z, UNSUPPORTED_CALL)
        ]
    ),
    case!("query_core_v1", "QUERY_PROTOCOL", [query(1, (1 << 32) | 1)]),
    case!(
        "query_core_v0_and_v2",
        "QUERY_PROTOCOL",
        [query(0, 0), query(2, 0)]
    ),
    case!(
        "query_unknown_protocol",
        "QUERY_PROTOCOL",
        [query((9 << 32) | 1, 0), query((2 << 32) | 1, 0)]
    ),
    case!(
        "vtom_query",
        "CONFIGURE_VTOM",
        [call(
            call_rax(0, CONFIGURE_VTOM),
            imm(1),
            Z,
            Z,
            Expect {
                rax: SUCCESS,
                rcx: Reg::Is(Z),
                rdx: Reg::Same,
                r8: Reg::Same
            }
        )]
    ),
    case!(
        "vtom_configure_refused",
        "CONFIGURE_VTOM",
        [core1(
            CONFIGURE_VTOM,
            imm(0x8000_0000_0000),
            INVALID_REQUEST
        )]
    ),
    case!(
        "remap_ca_misaligned",
        "REMAP_CA",
        [core1(REMAP_CA, at(sc(C2 + 8)), INVALID_PARAMETER)]
    ),
    case!(
        "remap_ca_in_svsm",
        "REMAP_CA",
        [core1(REMAP_CA, at(Loc::Svsm(0)), INVALID_ADDRESS)]
    ),
    case!(
        "remap_ca_beyond_ram",
        "REMAP_CA",
        [core1(REMAP_CA, at(Loc::BeyondRam(0)), INVALID_ADDRESS)]
    ),
    case!(
        "remap_ca_same",
        "REMAP_CA",
        [core1(REMAP_CA, at(Loc::Ca(0)), SUCCESS)]
    ),
    case!(
        "remap_ca_and_back",
        "REMAP_CA",
        [
            Step::Fill {
                at: sc(C2),
                len: 0x1000,
                byte: 0x5a
            },
            core1(REMAP_CA, at(sc(C2)), SUCCESS),
            Step::ExpectFill {
                at: sc(C2),
                len: 8,
                byte: 0
            },
            Step::ExpectFill {
                at: sc(C2 + 8),
                len: 0x1000 - 8,
                byte: 0x5a
            },
            query(1, (1 << 32) | 1),
            core1(REMAP_CA, at(Loc::Ca(0)), SUCCESS),
            query(1, (1 << 32) | 1),
        ]
    ),
    case!(
        "pvalidate_list_misaligned",
        "PVALIDATE",
        [pvalidate(sc(LIST + 4), INVALID_PARAMETER)]
    ),
    case!(
        "pvalidate_list_in_svsm",
        "PVALIDATE",
        [pvalidate(Loc::Svsm(0), INVALID_ADDRESS)]
    ),
    case!(
        "pvalidate_list_beyond_ram",
        "PVALIDATE",
        [pvalidate(Loc::BeyondRam(0), INVALID_ADDRESS)]
    ),
    case!(
        "pvalidate_zero_entries",
        "PVALIDATE",
        [header(LIST, 0, 0), pvalidate(sc(LIST), INVALID_PARAMETER)]
    ),
    case!(
        "pvalidate_next_at_end",
        "PVALIDATE",
        [
            header(LIST, 1, 1),
            entry0(entry(T1, VALIDATE)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
        ]
    ),
    case!(
        "pvalidate_list_past_page_end",
        "PVALIDATE",
        [header(0xff0, 2, 0), pvalidate(sc(0xff0), INVALID_PARAMETER),]
    ),
    case!(
        "pvalidate_list_on_ca_header",
        "PVALIDATE",
        [pvalidate(Loc::Ca(0), INVALID_PARAMETER)]
    ),
    case!(
        "pvalidate_ca_511_entries",
        "PVALIDATE",
        [
            Step::ListHeader {
                at: Loc::Ca(8),
                entries: 511,
                next: 0
            },
            pvalidate(Loc::Ca(8), INVALID_PARAMETER),
        ]
    ),
    case!(
        "pvalidate_reserved_bits",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(entry(T1, VALIDATE | 0x10)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
            expect_next(LIST, &[0, 0]),
            entry0(entry(T1, 0x800)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
        ]
    ),
    case!(
        "pvalidate_bad_page_size",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(entry(T1, 2)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
            entry0(entry(T1, 3)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
        ]
    ),
    case!(
        "pvalidate_2m_misaligned",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(entry(T1, SIZE_2M | VALIDATE)),
            pvalidate(sc(LIST), INVALID_PARAMETER),
        ]
    ),
    case!(
        "pvalidate_page_in_svsm",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(Val::AtOr(Loc::Svsm(0), VALIDATE)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
        ]
    ),
    case!(
        "pvalidate_page_beyond_ram",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(Val::AtOr(Loc::BeyondRam(0), VALIDATE)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
        ]
    ),
    case!(
        "pvalidate_own_ca_or_list_page",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(Val::AtOr(Loc::Ca(0), 0)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
            entry0(entry(LIST, 0)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
            expect_next(LIST, &[0, 0]),
        ]
    ),
    case!(
        "pvalidate_already_valid",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(entry(T1, VALIDATE)),
            pvalidate(sc(LIST), UNCHANGED),
            expect_next(LIST, &[0, 0]),
        ]
    ),
    case!(
        "pvalidate_ignore_cf_keeps_contents",
        "PVALIDATE",
        [
            Step::Fill {
                at: sc(T1),
                len: 0x1000,
                byte: 0x77
            },
            header(LIST, 1, 0),
            entry0(entry(T1, VALIDATE | IGNORE_CF)),
            pvalidate(sc(LIST), SUCCESS),
            expect_next(LIST, &[1, 0]),
            Step::ExpectFill {
                at: sc(T1),
                len: 0x1000,
                byte: 0x77
            },
        ]
    ),
    case!(
        "pvalidate_4k_cycle_zeroes",
        "PVALIDATE",
        [
            Step::Fill {
                at: sc(T1),
                len: 0x2000,
                byte: 0xaa
            },
            header(LIST, 2, 0),
            Step::Entries {
                at: sc(LIST + 8),
                first: sc(T1),
                count: 2,
                stride: 0x1000,
                flags: 0
            },
            pvalidate(sc(LIST), SUCCESS),
            expect_next(LIST, &[2, 0]),
            header(LIST, 2, 0),
            Step::Entries {
                at: sc(LIST + 8),
                first: sc(T1),
                count: 2,
                stride: 0x1000,
                flags: VALIDATE
            },
            pvalidate(sc(LIST), SUCCESS),
            expect_next(LIST, &[2, 0]),
            Step::ExpectFill {
                at: sc(T1),
                len: 0x2000,
                byte: 0
            },
        ]
    ),
    case!(
        "pvalidate_partial_failure",
        "PVALIDATE",
        [
            header(LIST, 3, 0),
            Step::WriteU64 {
                at: sc(LIST + 8),
                val: entry(T1, 0)
            },
            Step::WriteU64 {
                at: sc(LIST + 16),
                val: entry(T2, 0x20)
            },
            Step::WriteU64 {
                at: sc(LIST + 24),
                val: entry(T2, 0)
            },
            pvalidate(sc(LIST), INVALID_PARAMETER),
            expect_next(LIST, &[1, 0]),
            header(LIST, 1, 0),
            entry0(entry(T1, VALIDATE)),
            pvalidate(sc(LIST), SUCCESS),
            // T2 was not touched: still valid.
            header(LIST, 1, 0),
            entry0(entry(T2, VALIDATE)),
            pvalidate(sc(LIST), UNCHANGED),
        ]
    ),
    case!(
        "pvalidate_resumes_at_next",
        "PVALIDATE",
        [
            header(LIST, 2, 1),
            Step::WriteU64 {
                at: sc(LIST + 8),
                val: imm(0xff3)
            },
            Step::WriteU64 {
                at: sc(LIST + 16),
                val: entry(T1, VALIDATE | IGNORE_CF)
            },
            pvalidate(sc(LIST), SUCCESS),
            expect_next(LIST, &[2, 0]),
        ]
    ),
    case!(
        "pvalidate_list_in_ca",
        "PVALIDATE",
        [
            Step::ListHeader {
                at: Loc::Ca(8),
                entries: 2,
                next: 0
            },
            Step::WriteU64 {
                at: Loc::Ca(16),
                val: entry(T1, 0)
            },
            Step::WriteU64 {
                at: Loc::Ca(24),
                val: entry(T1, VALIDATE)
            },
            pvalidate(Loc::Ca(8), SUCCESS),
            Step::ExpectBytes {
                at: Loc::Ca(10),
                bytes: &[2, 0]
            },
        ]
    ),
    case!(
        "pvalidate_ca_510_entries",
        "PVALIDATE",
        [
            Step::ListHeader {
                at: Loc::Ca(8),
                entries: 510,
                next: 0
            },
            Step::Entries {
                at: Loc::Ca(16),
                first: sc(T1),
                count: 510,
                stride: 0,
                flags: VALIDATE | IGNORE_CF
            },
            pvalidate(Loc::Ca(8), SUCCESS),
            Step::ExpectBytes {
                at: Loc::Ca(10),
                bytes: &[0xfe, 1]
            },
        ]
    ),
    case!(
        "pvalidate_2m_over_4k_pages",
        "PVALIDATE",
        [
            header(LIST, 1, 0),
            entry0(entry(H, SIZE_2M | VALIDATE)),
            pvalidate(sc(LIST), SIZEMISMATCH),
        ]
    ),
    case!(
        "pvalidate_2m_cycle",
        "PVALIDATE",
        [
            Step::Fill {
                at: sc(H),
                len: 0x1000,
                byte: 0xcc
            },
            Step::Fill {
                at: sc(H + 0x1f_f000),
                len: 0x1000,
                byte: 0xcc
            },
            H_INVALIDATE[0],
            H_INVALIDATE[1],
            H_INVALIDATE[2],
            H_INVALIDATE[3],
            H_INVALIDATE[4],
            H_INVALIDATE[5],
            header(LIST, 1, 0),
            entry0(entry(H, SIZE_2M | VALIDATE)),
            pvalidate(sc(LIST), SUCCESS),
            Step::ExpectFill {
                at: sc(H),
                len: 0x1000,
                byte: 0
            },
            Step::ExpectFill {
                at: sc(H + 0x1f_f000),
                len: 0x1000,
                byte: 0
            },
            header(LIST, 1, 0),
            entry0(entry(H + 0x1000, 0)),
            pvalidate(sc(LIST), SIZEMISMATCH),
            entry0(entry(H, SIZE_2M)),
            pvalidate(sc(LIST), SUCCESS),
            H_VALIDATE[0],
            H_VALIDATE[1],
            H_VALIDATE[2],
            H_VALIDATE[3],
            H_VALIDATE[4],
            H_VALIDATE[5],
        ]
    ),
    case!(
        "create_vcpu_vmsa_misaligned",
        "CREATE_VCPU",
        [create(at(sc(V + 8)), at(sc(C2)), INVALID_ADDRESS)]
    ),
    case!(
        "create_vcpu_caa_misaligned",
        "CREATE_VCPU",
        [create(at(sc(V)), at(sc(C2 + 8)), INVALID_ADDRESS)]
    ),
    case!(
        "create_vcpu_vmsa_in_svsm",
        "CREATE_VCPU",
        [create(at(Loc::Svsm(0)), at(sc(C2)), INVALID_ADDRESS)]
    ),
    case!(
        "create_vcpu_caa_in_svsm",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            create(at(sc(V)), at(Loc::Svsm(0)), INVALID_ADDRESS),
        ]
    ),
    case!(
        "create_vcpu_vmsa_beyond_ram",
        "CREATE_VCPU",
        [create(at(Loc::BeyondRam(0)), at(sc(C2)), INVALID_ADDRESS)]
    ),
    case!(
        "create_vcpu_vmsa_is_caa",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            create(at(sc(V)), at(sc(V)), INVALID_ADDRESS),
        ]
    ),
    case!(
        "create_vcpu_vmsa_is_own_ca",
        "CREATE_VCPU",
        [create(at(Loc::Ca(0)), at(sc(C2)), INVALID_ADDRESS)]
    ),
    case!(
        "create_vcpu_wrong_vmpl",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            Step::Write {
                at: sc(V + 0xca),
                bytes: &[0]
            },
            create(at(sc(V)), at(sc(C2)), INVALID_PARAMETER),
            // Refused: the page is the guest's again.
            Step::Write {
                at: sc(V),
                bytes: &[0]
            },
        ]
    ),
    case!(
        "create_vcpu_svme_clear",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            Step::WriteU64 {
                at: sc(V + 0xd0),
                val: imm(0x500)
            },
            create(at(sc(V)), at(sc(C2)), INVALID_PARAMETER),
        ]
    ),
    case!(
        "create_vcpu_sev_features",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            Step::WriteU64 {
                at: sc(V + 0x3b0),
                val: imm(u64::MAX)
            },
            create(at(sc(V)), at(sc(C2)), INVALID_PARAMETER),
        ]
    ),
    case!(
        "create_vcpu_unknown_apic_id",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            core(
                CREATE_VCPU,
                at(sc(V)),
                at(sc(C2)),
                imm(0xffff_ffff),
                INVALID_PARAMETER
            ),
        ]
    ),
    case!(
        "create_and_delete_vcpu",
        "CREATE_VCPU",
        [
            Step::InitVmsa { at: sc(V) },
            create(at(sc(V)), at(sc(C2)), SUCCESS),
            create(at(sc(V)), at(sc(C2)), INVALID_ADDRESS),
            core1(REMAP_CA, at(sc(V)), INVALID_ADDRESS),
            // The running VMSA is the SVSM's: PVALIDATE may not touch it,
            // nor give the guest access back.
            header(LIST, 1, 0),
            entry0(entry(V, 0)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
            entry0(entry(V, VALIDATE | IGNORE_CF)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
            core1(DELETE_VCPU, at(sc(V)), SUCCESS),
            core1(DELETE_VCPU, at(sc(V)), INVALID_PARAMETER),
        ]
    ),
    case!(
        "delete_vcpu_misaligned",
        "DELETE_VCPU",
        [core1(DELETE_VCPU, at(sc(V + 0x10)), INVALID_ADDRESS)]
    ),
    case!(
        "delete_vcpu_in_svsm",
        "DELETE_VCPU",
        [core1(DELETE_VCPU, at(Loc::Svsm(0)), INVALID_ADDRESS)]
    ),
    case!(
        "delete_vcpu_unknown",
        "DELETE_VCPU",
        [core1(DELETE_VCPU, at(sc(V)), INVALID_PARAMETER)]
    ),
    case!(
        "deposit_reserved_bits",
        "DEPOSIT_MEM",
        [
            header(LIST, 1, 0),
            entry0(entry(D, VALIDATE)),
            core1(DEPOSIT_MEM, at(sc(LIST)), INVALID_PARAMETER),
        ]
    ),
    case!(
        "deposit_in_svsm",
        "DEPOSIT_MEM",
        [
            header(LIST, 1, 0),
            entry0(Val::AtOr(Loc::Svsm(0), 0)),
            core1(DEPOSIT_MEM, at(sc(LIST)), INVALID_ADDRESS),
        ]
    ),
    case!(
        "deposit_own_ca_or_list_page",
        "DEPOSIT_MEM",
        [
            header(LIST, 1, 0),
            entry0(Val::AtOr(Loc::Ca(0), 0)),
            core1(DEPOSIT_MEM, at(sc(LIST)), INVALID_ADDRESS),
            entry0(entry(LIST, 0)),
            core1(DEPOSIT_MEM, at(sc(LIST)), INVALID_ADDRESS),
            expect_next(LIST, &[0, 0]),
        ]
    ),
    case!(
        "withdraw_nothing",
        "WITHDRAW_MEM",
        [
            header(W, 2, 0),
            core1(WITHDRAW_MEM, at(sc(W)), SUCCESS),
            expect_next(W, &[0, 0]),
        ]
    ),
    case!(
        "deposit_and_withdraw",
        "DEPOSIT_MEM",
        [
            header(LIST, 1, 0),
            entry0(entry(D, 0)),
            core1(DEPOSIT_MEM, at(sc(LIST)), SUCCESS),
            expect_next(LIST, &[1, 0]),
            // Deposited memory is the SVSM's.
            header(LIST, 1, 0),
            entry0(entry(D, 0)),
            pvalidate(sc(LIST), INVALID_ADDRESS),
            core1(REMAP_CA, at(sc(D)), INVALID_ADDRESS),
            create(at(sc(D)), at(sc(C2)), INVALID_ADDRESS),
            Step::InitVmsa { at: sc(V) },
            create(at(sc(V)), at(sc(D)), INVALID_ADDRESS),
            header(LIST, 1, 0),
            entry0(entry(D, 0)),
            core1(DEPOSIT_MEM, at(sc(LIST)), INVALID_ADDRESS),
            // A list on the deposited page is not read.
            core1(PVALIDATE, at(sc(D)), INVALID_ADDRESS),
            header(W, 4, 0),
            core1(WITHDRAW_MEM, at(sc(W)), SUCCESS),
            expect_next(W, &[1, 0]),
            Step::ExpectU64 {
                at: sc(W + 8),
                val: entry(D, 0)
            },
            // Withdrawn pages come back invalid: validate D again.
            header(LIST, 1, 0),
            entry0(entry(D, VALIDATE)),
            pvalidate(sc(LIST), SUCCESS),
        ]
    ),
];
