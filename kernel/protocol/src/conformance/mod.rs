//! The conformance suite: named cases as data, and a runner generic over
//! how a call is made ([`Caller`]).
//!
//! The same cases run on the host against the real handlers with the
//! guest-memory model and the fake backend (`tests/conformance.rs`, the
//! first oracle), and from the test guest in QEMU against the kernel.
//!
//! # What the guest provides ([`Env`])
//! - `scratch`: [`SCRATCH_SIZE`] bytes of its RAM, 2 MiB aligned, validated
//!   as 4 KiB pages, guest-accessible, holding nothing else (the cases fill,
//!   invalidate and validate it, and leave it validated as 4 KiB pages);
//! - `ca`: its Calling Area; the cases use the buffer from `ca + 8`;
//! - `svsm_base`: the secrets page's `svsm_base` (a GPA inside the SVSM);
//! - `beyond_ram`: a page-aligned GPA that is not guest RAM;
//! - `apic_id`: an APIC ID the SVSM can start a vCPU for.
//!
//! The cases need the core protocol enabled at version 1 exactly, and
//! protocols 2 (vTPM) and 9 not provided.

mod cases;

pub use cases::CASES;

use crate::regs::{CallRegs, OutRegs};

/// Bytes of guest RAM the cases use, from [`Env::scratch`].
pub const SCRATCH_SIZE: u64 = 0x40_0000;

/// Where the guest's resources are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    pub scratch: u64,
    pub ca: u64,
    pub svsm_base: u64,
    pub beyond_ram: u64,
    pub apic_id: u32,
}

/// A guest-physical location, relative to the [`Env`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Scratch(u64),
    Ca(u64),
    Svsm(u64),
    BeyondRam(u64),
}

/// A register or memory value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    Imm(u64),
    /// The GPA of a location.
    At(Loc),
    /// The GPA of a location with low bits ORed in (list entries).
    AtOr(Loc, u64),
    /// The APIC ID the guest provides, ORed with the value.
    ApicIdOr(u64),
}

/// What an output register must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// The spec leaves it open.
    Any,
    /// Its value before the call.
    Same,
    Is(Val),
}

/// The registers a call must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub rax: u64,
    pub rcx: Reg,
    pub rdx: Reg,
    pub r8: Reg,
}

/// One call and its expected result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallStep {
    pub rax: u64,
    pub rcx: Val,
    pub rdx: Val,
    pub r8: Val,
    pub r9: Val,
    pub expect: Expect,
}

/// One step of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The guest fills `len` bytes at `at` with `byte`.
    Fill {
        at: Loc,
        len: u64,
        byte: u8,
    },
    /// The guest writes these bytes.
    Write {
        at: Loc,
        bytes: &'static [u8],
    },
    /// The guest writes a little-endian u64.
    WriteU64 {
        at: Loc,
        val: Val,
    },
    /// The guest writes a list header (`entries`, `next`, reserved 0).
    ListHeader {
        at: Loc,
        entries: u16,
        next: u16,
    },
    /// The guest writes `count` list entries at `at`: entry i is
    /// (`first` + i * `stride`) | `flags`.
    Entries {
        at: Loc,
        first: Loc,
        count: u16,
        stride: u64,
        flags: u64,
    },
    /// The guest writes a VMSA that passes every CREATE_VCPU check.
    InitVmsa {
        at: Loc,
    },
    Call(CallStep),
    /// The guest reads these bytes back.
    ExpectBytes {
        at: Loc,
        bytes: &'static [u8],
    },
    /// The guest reads `len` bytes of `byte` back.
    ExpectFill {
        at: Loc,
        len: u64,
        byte: u8,
    },
    /// The guest reads a little-endian u64 back.
    ExpectU64 {
        at: Loc,
        val: Val,
    },
}

/// A named case: the call it is about, and its steps.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub call: &'static str,
    pub steps: &'static [Step],
}

/// How a guest (or the host model of one) makes calls.
pub trait Caller {
    /// Writes guest memory as the guest.
    fn write(&mut self, gpa: u64, data: &[u8]);
    /// Reads guest memory as the guest.
    fn read(&mut self, gpa: u64, buf: &mut [u8]);
    /// Writes a VMSA at `gpa` that passes every CREATE_VCPU check for this
    /// guest (its VMPL, EFER.SVME, its SEV_FEATURES) and that can run.
    fn init_vmsa(&mut self, gpa: u64);
    /// Makes the call the way Linux does (`call_pending = 1`, the exit,
    /// `xchg(call_pending, 0)`) from its current Calling Area; after a
    /// successful REMAP_CA it uses the new one.
    fn call(&mut self, regs: &CallRegs) -> OutRegs;
}

/// Why a case failed: the step (index) and what differed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub case: &'static str,
    pub step: usize,
    pub kind: FailKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    Register {
        reg: &'static str,
        got: u64,
        want: u64,
    },
    Memory {
        gpa: u64,
        got: u8,
        want: u8,
    },
}

/// What a passing case returned: its number of calls and the RAX of each
/// (the first [`MAX_RESULTS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Passed {
    pub calls: usize,
    pub results: [u64; MAX_RESULTS],
}

pub const MAX_RESULTS: usize = 8;

impl Env {
    pub fn gpa(&self, at: Loc) -> u64 {
        match at {
            Loc::Scratch(o) => self.scratch.wrapping_add(o),
            Loc::Ca(o) => self.ca.wrapping_add(o),
            Loc::Svsm(o) => self.svsm_base.wrapping_add(o),
            Loc::BeyondRam(o) => self.beyond_ram.wrapping_add(o),
        }
    }

    pub fn val(&self, v: Val) -> u64 {
        match v {
            Val::Imm(x) => x,
            Val::At(l) => self.gpa(l),
            Val::AtOr(l, bits) => self.gpa(l) | bits,
            Val::ApicIdOr(bits) => u64::from(self.apic_id) | bits,
        }
    }
}

/// Runs one case.
pub fn run_case(c: &mut impl Caller, env: &Env, case: &Case) -> Result<Passed, Failure> {
    let mut passed = Passed::default();
    for (i, step) in case.steps.iter().enumerate() {
        run_step(c, env, step, &mut passed).map_err(|kind| Failure {
            case: case.name,
            step: i,
            kind,
        })?;
    }
    Ok(passed)
}

/// Runs every case in order, reporting each; returns the number that failed.
pub fn run_all(
    c: &mut impl Caller,
    env: &Env,
    mut report: impl FnMut(&Case, &Result<Passed, Failure>),
) -> usize {
    let mut failed = 0;
    for case in CASES {
        let r = run_case(c, env, case);
        failed += usize::from(r.is_err());
        report(case, &r);
    }
    failed
}

fn run_step(
    c: &mut impl Caller,
    env: &Env,
    step: &Step,
    passed: &mut Passed,
) -> Result<(), FailKind> {
    match *step {
        Step::Fill { at, len, byte } => fill(c, env.gpa(at), len, byte),
        Step::Write { at, bytes } => c.write(env.gpa(at), bytes),
        Step::WriteU64 { at, val } => c.write(env.gpa(at), &env.val(val).to_le_bytes()),
        Step::ListHeader { at, entries, next } => {
            let mut h = [0u8; 8];
            h[..2].copy_from_slice(&entries.to_le_bytes());
            h[2..4].copy_from_slice(&next.to_le_bytes());
            c.write(env.gpa(at), &h);
        }
        Step::Entries {
            at,
            first,
            count,
            stride,
            flags,
        } => {
            for i in 0..u64::from(count) {
                let e = env.gpa(first).wrapping_add(i * stride) | flags;
                c.write(env.gpa(at) + i * 8, &e.to_le_bytes());
            }
        }
        Step::InitVmsa { at } => c.init_vmsa(env.gpa(at)),
        Step::Call(ref s) => return call(c, env, s, passed),
        Step::ExpectBytes { at, bytes } => {
            for (i, &want) in bytes.iter().enumerate() {
                expect_byte(c, env.gpa(at) + i as u64, want)?;
            }
        }
        Step::ExpectFill { at, len, byte } => return expect_fill(c, env.gpa(at), len, byte),
        Step::ExpectU64 { at, val } => {
            for (i, want) in env.val(val).to_le_bytes().into_iter().enumerate() {
                expect_byte(c, env.gpa(at) + i as u64, want)?;
            }
        }
    }
    Ok(())
}

const CHUNK: usize = 64;

fn fill(c: &mut impl Caller, gpa: u64, len: u64, byte: u8) {
    let chunk = [byte; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK as u64);
        c.write(gpa + done, &chunk[..n as usize]);
        done += n;
    }
}

fn expect_byte(c: &mut impl Caller, gpa: u64, want: u8) -> Result<(), FailKind> {
    let mut b = [0u8];
    c.read(gpa, &mut b);
    if b[0] != want {
        return Err(FailKind::Memory {
            gpa,
            got: b[0],
            want,
        });
    }
    Ok(())
}

fn expect_fill(c: &mut impl Caller, gpa: u64, len: u64, byte: u8) -> Result<(), FailKind> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        c.read(gpa + done, &mut buf[..n]);
        if let Some(i) = buf[..n].iter().position(|&b| b != byte) {
            return Err(FailKind::Memory {
                gpa: gpa + done + i as u64,
                got: buf[i],
                want: byte,
            });
        }
        done += n as u64;
    }
    Ok(())
}

fn call(c: &mut impl Caller, env: &Env, s: &CallStep, passed: &mut Passed) -> Result<(), FailKind> {
    let regs = CallRegs {
        rax: s.rax,
        rcx: env.val(s.rcx),
        rdx: env.val(s.rdx),
        r8: env.val(s.r8),
        r9: env.val(s.r9),
    };
    let out = c.call(&regs);
    if passed.calls < MAX_RESULTS {
        passed.results[passed.calls] = out.rax;
    }
    passed.calls += 1;
    check_reg(
        "rax",
        out.rax,
        Reg::Is(Val::Imm(s.expect.rax)),
        regs.rax,
        env,
    )?;
    check_reg("rcx", out.rcx, s.expect.rcx, regs.rcx, env)?;
    check_reg("rdx", out.rdx, s.expect.rdx, regs.rdx, env)?;
    check_reg("r8", out.r8, s.expect.r8, regs.r8, env)
}

fn check_reg(
    reg: &'static str,
    got: u64,
    want: Reg,
    input: u64,
    env: &Env,
) -> Result<(), FailKind> {
    let want = match want {
        Reg::Any => return Ok(()),
        Reg::Same => input,
        Reg::Is(v) => env.val(v),
    };
    if got != want {
        return Err(FailKind::Register { reg, got, want });
    }
    Ok(())
}
