//! The bodies of svsm-protocol's fuzz targets, shared by the libFuzzer
//! binaries (fuzz_targets/, `make fuzz`) and the corpus replay test that runs
//! in `make test` on stable (kernel/protocol/tests/fuzz_corpus.rs).
//!
//! Each target drives the real request path ([`ModelGuest::exit`]: the
//! Calling Area read, the registry, the core handlers) over the guest-memory
//! model and the fake backend, and checks what must hold for every input:
//! a valid result code, `call_pending` cleared, no guest byte read twice,
//! unchanged registers on failure, and the backend's invariants (no guest
//! access to sealed VMSAs or SVSM memory, no overlapping validated pages).
//! `pvalidate` also compares the handler with a plain reference walk of the
//! list (the sequential model).

use svsm_defs::svsm::{call_rax, core_call, result};
use svsm_protocol::model::{
    FakeBackend, MODEL_CA, MODEL_RAM, MODEL_SCRATCH, MODEL_SVSM, ModelGuest,
};
use svsm_protocol::{CallRegs, CoreBackend, Outcome, PvalidateDone};

/// The validated part of the scratch region the targets start with: 16
/// pages (the 2 MiB page at scratch + 2 MiB starts invalid).
const SCRATCH_VALID: u64 = 0x10000;

/// Reads the input front to back; past its end every value is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, i| v | u64::from(self.u8()) << (8 * i))
    }

    /// A GPA worth trying: mostly near the places the handlers care about.
    fn gpa(&mut self) -> u64 {
        let sel = self.u8();
        let off = u64::from(self.u16()) << (((sel >> 5) & 3) * 4);
        match sel % 8 {
            0 => self.u64(),
            1..=3 => MODEL_SCRATCH + off,
            4 => MODEL_CA + (off & 0xfff),
            5 => MODEL_SVSM.start + off,
            6 => MODEL_RAM - 0x1000 + off,
            _ => off,
        }
    }

    fn rest(&mut self) -> &[u8] {
        core::mem::take(&mut self.0)
    }
}

const VALID_CODES: [u64; 11] = [
    result::SUCCESS,
    result::INCOMPLETE,
    result::UNSUPPORTED_PROTOCOL,
    result::UNSUPPORTED_CALL,
    result::INVALID_ADDRESS,
    result::INVALID_PARAMETER,
    result::INVALID_REQUEST,
    result::BUSY,
    0x8000_1001,
    0x8000_1006,
    0x8000_1010,
];

/// One call on `g` with `call_pending` set, checked; returns RAX.
fn checked_call(g: &mut ModelGuest, regs: &CallRegs) -> u64 {
    let ca = g.ca;
    g.mem.poke(ca, &[1]);
    let before = g.backend.state.lock().clone();
    let out = match g.exit(regs) {
        Outcome::Served(out) => out,
        o => panic!("{regs:x?}: {o:?}"),
    };
    let mut pending = [1u8];
    g.mem.peek(ca, &mut pending);
    assert_eq!(pending[0], 0, "call_pending left set");
    assert!(VALID_CODES.contains(&out.rax), "result {:#x}", out.rax);
    assert_eq!(g.double_fetch, None, "a guest byte was read twice");
    let is_output = regs.rax == call_rax(0, core_call::QUERY_PROTOCOL)
        || regs.rax == call_rax(0, core_call::CONFIGURE_VTOM);
    if out.rax != result::SUCCESS || !is_output {
        assert_eq!((out.rcx, out.rdx, out.r8), (regs.rcx, regs.rdx, regs.r8));
    }
    invariants(&g.backend);
    // A refused single-object call (everything but the list calls) changes
    // nothing: no half-created vCPU, no page left sealed.
    let single = [
        core_call::REMAP_CA,
        core_call::CREATE_VCPU,
        core_call::DELETE_VCPU,
        core_call::QUERY_PROTOCOL,
        core_call::CONFIGURE_VTOM,
    ];
    if out.rax != result::SUCCESS && single.iter().any(|&c| regs.rax == call_rax(0, c)) {
        let after = g.backend.state.lock();
        assert_eq!(
            (&after.validated, &after.guest_access, &after.sealed),
            (&before.validated, &before.guest_access, &before.sealed)
        );
        assert_eq!(
            (&after.vcpus, &after.caas, after.ops),
            (&before.vcpus, &before.caas, before.ops)
        );
    }
    out.rax
}

/// What the backend's state must satisfy after any call.
fn invariants(b: &FakeBackend) {
    let s = b.state.lock();
    for v in s.sealed.iter() {
        assert!(
            !s.guest_access.contains(v),
            "sealed VMSA {v:#x} guest-accessible"
        );
    }
    for &(d, size) in s.deposited.iter() {
        assert!(
            !s.guest_access.contains(&d),
            "deposited {d:#x} guest-accessible"
        );
        assert!(!s.sealed.contains(&d) && size.bytes() >= 0x1000);
    }
    for (vmsa, (caa, _)) in s.vcpus.iter() {
        assert!(s.sealed.contains(vmsa));
        assert!(!s.sealed.contains(caa), "a CAA is a VMSA");
    }
    for caa in s.caas.values() {
        assert!(!s.sealed.contains(caa), "a Calling Area is a VMSA");
    }
    assert!(
        !s.guest_access
            .iter()
            .any(|&p| MODEL_SVSM.overlaps(p, 0x1000)),
        "guest access to SVSM memory"
    );
    let mut end = 0;
    for (&gpa, size) in s.validated.iter() {
        assert!(gpa >= end, "validated pages overlap at {gpa:#x}");
        end = gpa + size.bytes();
    }
    assert!(s.vcpus.len() <= b.max_vcpus);
}

/// Request decoding and dispatch: any registers, any Calling Area buffer
/// and scratch bytes.
pub fn request(data: &[u8]) {
    let mut i = Input(data);
    let first = i.u8();
    let mut g = ModelGuest::with_scratch(u16::from(first % 4), SCRATCH_VALID);
    // Half the inputs run against a backend that leaves the ownership
    // checks to the protocol layer.
    g.backend.check_owned = first & 0x80 == 0;
    let regs = CallRegs {
        rax: call_rax(u32::from(i.u8() % 4), u32::from(i.u8() % 10)),
        rcx: i.gpa(),
        rdx: i.gpa(),
        r8: i.u64(),
        r9: i.u64(),
    };
    let pending = i.u8() & 1;
    let rest = i.rest();
    let (ca_part, scratch_part) = rest.split_at(rest.len().min(4088));
    g.mem.poke(MODEL_CA + 8, ca_part);
    g.mem.poke(MODEL_SCRATCH, scratch_part);
    if pending == 0 {
        assert_eq!(g.exit(&regs), Outcome::NoCall);
        return;
    }
    checked_call(&mut g, &regs);
}

/// A PVALIDATE list built from the input (header, entries pointing at pages
/// near the scratch region, the SVSM and the end of RAM, any flag bits),
/// in guest memory or in the Calling Area, run by the handler and by a
/// reference walk on a copy of the backend: same result, same `next`, same
/// backend state, and every page that became valid reads as zeros.
pub fn pvalidate(data: &[u8]) {
    let mut i = Input(data);
    let mut g = ModelGuest::with_scratch(u16::from(i.u8() % 4), SCRATCH_VALID);
    let in_ca = i.u8() & 1 == 1;
    let list = if in_ca {
        MODEL_CA + 8
    } else {
        MODEL_SCRATCH + u64::from(i.u16() & 0xfff)
    };
    let count = i.u8() % 12;
    let mut header = [0u8; 8];
    header[0] = count + i.u8() % 2;
    header[2] = i.u8() % 3;
    let mut entries = Vec::new();
    for _ in 0..count {
        let page = match i.u8() % 8 {
            0 => MODEL_SVSM.start + 0x1000 * u64::from(i.u8()),
            1 => MODEL_RAM - 0x1000 + 0x1000 * u64::from(i.u8() % 4),
            2 => MODEL_SCRATCH + 0x20_0000 * u64::from(i.u8() % 2),
            _ => MODEL_SCRATCH + 0x1000 * u64::from(i.u8() % 16),
        };
        entries.push(page | u64::from(i.u16() & 0xfff));
    }
    for p in 0..16u64 {
        g.mem.poke(MODEL_SCRATCH + 0x1000 * p + 0x800, &[0xab; 8]);
    }
    g.mem.poke(list, &header);
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    g.mem.poke(list + 8, &bytes);
    let reference = FakeBackend::new(MODEL_RAM, &[MODEL_SVSM]);
    *reference.state.lock() = g.backend.state.lock().clone();
    let before = reference.state.lock().validated.clone();
    let regs = CallRegs {
        rax: call_rax(0, core_call::PVALIDATE),
        rcx: list,
        ..Default::default()
    };
    let rax = checked_call(&mut g, &regs);
    let mut next = [0u8; 2];
    g.mem.peek(list + 2, &mut next);
    let budget = g.core.pvalidate_budget();
    let (want_rax, want_next) = reference_walk(&reference, list, &header, &entries, budget);
    assert_eq!((rax, u16::from_le_bytes(next)), (want_rax, want_next));
    let (got, want) = (g.backend.state.lock(), reference.state.lock());
    assert_eq!(got.validated, want.validated);
    assert_eq!(got.guest_access, want.guest_access);
    // A page that became valid was zeroed.
    for &gpa in got.validated.keys() {
        if !before.contains_key(&gpa) && (MODEL_SCRATCH..MODEL_SCRATCH + 0x10000).contains(&gpa) {
            let mut b = [0xffu8; 8];
            g.mem.peek(gpa + 0x800, &mut b);
            assert_eq!(b, [0; 8], "{gpa:#x} validated without zeroing");
        }
    }
}

/// The list semantics written out plainly, driving `b` directly.
fn reference_walk(b: &FakeBackend, list: u64, h: &[u8; 8], e: &[u64], budget: u16) -> (u64, u16) {
    let (entries, mut next) = (u16::from(h[0]), u16::from(h[2]));
    let max = (0x1000 - list % 0x1000).saturating_sub(8) / 8;
    if !list.is_multiple_of(8)
        || list == MODEL_CA
        || entries == 0
        || u64::from(entries) > max
        || next >= entries
    {
        return (result::INVALID_PARAMETER, next);
    }
    let mut done = 0;
    while next < entries {
        if budget != 0 && done == budget {
            return (result::INCOMPLETE, next);
        }
        // Entries past those written read as zero: a 4K invalidate of page 0.
        let raw = e.get(usize::from(next)).copied().unwrap_or(0);
        let size = match raw & 3 {
            0 => svsm_defs::svsm::EntryPageSize::Size4K,
            1 => svsm_defs::svsm::EntryPageSize::Size2M,
            _ => return (result::INVALID_PARAMETER, next),
        };
        let gpa = raw & !0xfff;
        if raw & 0xff0 != 0 || !gpa.is_multiple_of(size.bytes()) {
            return (result::INVALID_PARAMETER, next);
        }
        if MODEL_SVSM.overlaps(gpa, size.bytes()) {
            return (result::INVALID_ADDRESS, next);
        }
        let validate = raw & 4 != 0;
        // The list's page and the Calling Area stay valid while in use.
        let holds = |page: u64| page < gpa + size.bytes() && gpa < page + 0x1000;
        if !validate && (holds(list & !0xfff) || holds(MODEL_CA)) {
            return (result::INVALID_ADDRESS, next);
        }
        match b.pvalidate(gpa, size, validate) {
            Err(err) => return (err.code(), next),
            Ok(PvalidateDone::Unchanged) if raw & 8 == 0 => return (0x8000_1010, next),
            Ok(PvalidateDone::Changed) if validate => b.grant_guest(gpa, size).unwrap(),
            Ok(_) => {}
        }
        next += 1;
        done += 1;
    }
    (result::SUCCESS, next)
}

/// Sequences of CREATE_VCPU, DELETE_VCPU, REMAP_CA, PVALIDATE and
/// QUERY_PROTOCOL with fuzzed addresses and VMSA fields: the invariants
/// hold after every call, a created vCPU's VMSA passed the checks, and a
/// refused CREATE_VCPU leaves nothing sealed.
pub fn vcpu(data: &[u8]) {
    let mut i = Input(data);
    let mut g = ModelGuest::with_scratch(0, SCRATCH_VALID);
    g.backend.check_owned = data.len().is_multiple_of(2);
    for _ in 0..16 {
        let op = i.u8();
        if op == 0 && i.0.is_empty() {
            break;
        }
        let page = |i: &mut Input| match i.u8() % 8 {
            0 => i.gpa(),
            1 => MODEL_CA,
            _ => MODEL_SCRATCH + 0x1000 * u64::from(i.u8() % 8),
        };
        let (a, b) = (page(&mut i), page(&mut i));
        let regs = match op % 5 {
            0 => {
                let writable = g.backend.state.lock().guest_access.contains(&a);
                if writable {
                    prepare_vmsa(&mut g, a, &mut i);
                }
                core(core_call::CREATE_VCPU, a, b, u64::from(i.u8() % 6))
            }
            1 => core(core_call::DELETE_VCPU, a, 0, 0),
            2 => core(core_call::REMAP_CA, a, 0, 0),
            3 => {
                let list = MODEL_SCRATCH + 0x3f_f000;
                let entry = (a & !0xfff) | u64::from(i.u8() & 0xd);
                g.mem.poke(list, &[1, 0, 0, 0, 0, 0, 0, 0]);
                g.mem.poke(list + 8, &entry.to_le_bytes());
                core(core_call::PVALIDATE, list, 0, 0)
            }
            _ => core(core_call::QUERY_PROTOCOL, i.u64(), 0, 0),
        };
        let sealed_before = g.backend.state.lock().sealed.clone();
        let rax = checked_call(&mut g, &regs);
        let s = g.backend.state.lock();
        if regs.rax == call_rax(0, core_call::CREATE_VCPU) {
            if rax == result::SUCCESS {
                assert!(s.vcpus.contains_key(&regs.rcx));
                assert_ne!(regs.rcx, regs.rdx);
            } else {
                assert_eq!(
                    s.sealed, sealed_before,
                    "a refused CREATE_VCPU sealed a page"
                );
            }
        }
        if regs.rax == call_rax(0, core_call::REMAP_CA) && rax == result::SUCCESS {
            drop(s);
            g.ca = regs.rcx;
        }
    }
}

fn core(call: u32, rcx: u64, rdx: u64, r8: u64) -> CallRegs {
    CallRegs {
        rax: call_rax(0, call),
        rcx,
        rdx,
        r8,
        r9: 0,
    }
}

/// Writes a VMSA at `gpa` whose VMPL, EFER and SEV_FEATURES are right or
/// wrong as the input says.
fn prepare_vmsa(g: &mut ModelGuest, gpa: u64, i: &mut Input) {
    let sel = i.u8();
    let vmpl = if sel & 1 == 0 {
        g.backend.guest_vmpl
    } else {
        sel >> 4
    };
    let efer: u64 = if sel & 2 == 0 { 0x1d00 } else { 0x500 };
    let features = if sel & 4 == 0 {
        g.backend.features.bits()
    } else {
        i.u64()
    };
    let mut page = vec![0u8; 0x1000];
    page[0xca] = vmpl;
    page[0xd0..0xd8].copy_from_slice(&efer.to_le_bytes());
    page[0x3b0..0x3b8].copy_from_slice(&features.to_le_bytes());
    g.mem.poke(gpa, &page);
}
