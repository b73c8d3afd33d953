//! The #VMEXIT handler: every exit is handled here or ends the guest with a
//! report. The SVSM computes the next RIP itself (QEMU's emulation never
//! writes NRIP): IOIO gives it in EXITINFO2; RDMSR, WRMSR and CPUID are two
//! bytes; VMMCALL is three, and four with the F3 prefix that makes it
//! VMGEXIT. The decisions that need no hardware are host-tested in
//! `svsm_kernel::vmexit`.

use super::memory;
use super::{Guest, service};
use core::mem::offset_of;
use svsm_bootdefs::DEBUG_EXIT_PORT;
use svsm_bootdefs::guest::GUEST_RAM_START;
use svsm_bootdefs::layout::PAGE_SIZE;
use svsm_defs::ghcb::{Ghcb, exit_code as ghcb_exit};
use svsm_defs::ioio::{self, IoioInfo};
use svsm_defs::msr;
use svsm_defs::vmcb::{exit, npf};
use svsm_kernel::vmexit::{GhcbMsr, NpfTarget, Vmmcall, npf_reason, run_vmpl_response};

/// COM1's data port and its line-status register.
const COM1: u16 = 0x3f8;
const COM1_LSR: u16 = COM1 + 5;
/// LSR: transmitter holding register and transmitter empty.
const LSR_TX_EMPTY: u64 = 0x60;

/// Why a guest (or one of its vCPUs) stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest wrote its exit code to the exit port.
    Exited(u32),
    /// The vCPU executed HLT (no interrupts ever wake it).
    Halted,
    /// The SVSM ended the guest.
    Killed(Report),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub exit_code: u64,
    pub info1: u64,
    pub info2: u64,
    pub rip: u64,
    pub reason: &'static str,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "exit={:#x} ({}) exitinfo1={:#x} exitinfo2={:#x} rip={:#x}: {}",
            self.exit_code,
            exit::name(self.exit_code),
            self.info1,
            self.info2,
            self.rip,
            self.reason
        )
    }
}

pub enum Flow {
    Resume,
    Stop(Stop),
}

fn kill(g: &mut Guest, vcpu: usize, code: u64, reason: &'static str) -> Flow {
    let v = g.vcpu(vcpu);
    let rip = *v.rip();
    let c = v.control();
    Flow::Stop(Stop::Killed(Report {
        exit_code: code,
        info1: c.exit_info_1,
        info2: c.exit_info_2,
        rip,
        reason,
    }))
}

/// Handles the exit `code` of vCPU `vcpu`.
pub fn handle(g: &mut Guest, vcpu: usize, code: u64) -> Flow {
    g.exits += 1;
    match code {
        exit::IOIO => ioio(g, vcpu),
        exit::MSR => msr_access(g, vcpu),
        exit::CPUID => cpuid(g, vcpu),
        exit::VMMCALL => vmmcall(g, vcpu),
        exit::HLT => {
            *g.vcpu(vcpu).rip() += 1;
            Flow::Stop(Stop::Halted)
        }
        exit::NPF => nested_page_fault(g, vcpu),
        // A physical interrupt ended the run; the SVSM takes none (IF = 0).
        exit::INTR => Flow::Resume,
        // An NMI for the SVSM (e.g. another CPU's request) ended the run; the
        // host took it when `vmrun` set GIF again.
        exit::NMI => Flow::Resume,
        exit::SHUTDOWN => kill(g, vcpu, code, "the guest shut down (triple fault)"),
        exit::INVALID => kill(g, vcpu, code, "VMRUN refused the guest state"),
        0x40..=0x5f => kill(g, vcpu, code, "unhandled exception in the guest"),
        _ => kill(g, vcpu, code, "exit not handled by the SVSM"),
    }
}

fn ioio(g: &mut Guest, vcpu: usize) -> Flow {
    let (info1, next) = {
        let c = g.vcpu(vcpu).control();
        (c.exit_info_1, c.exit_info_2)
    };
    let io = IoioInfo::from_bits_truncate(info1);
    if io.intersects(IoioInfo::STR | IoioInfo::REP) {
        return kill(g, vcpu, exit::IOIO, "string port I/O is not emulated");
    }
    let v = g.vcpu(vcpu);
    let rax = *v.rax();
    match (ioio::port(info1), io.contains(IoioInfo::TYPE_IN)) {
        (COM1, false) => g.console.put(rax as u8),
        (COM1_LSR, true) => *v.rax() = (rax & !0xff) | LSR_TX_EMPTY,
        (p, true) if (COM1..COM1 + 8).contains(&p) => *v.rax() = rax & !0xff,
        (p, false) if (COM1..COM1 + 8).contains(&p) => {}
        (DEBUG_EXIT_PORT, false) if io.contains(IoioInfo::SZ32) => {
            *v.rip() = next;
            return Flow::Stop(Stop::Exited(rax as u32));
        }
        _ => {
            return kill(
                g,
                vcpu,
                exit::IOIO,
                "port I/O to a port the SVSM does not emulate",
            );
        }
    }
    *g.vcpu(vcpu).rip() = next;
    Flow::Resume
}

fn msr_access(g: &mut Guest, vcpu: usize) -> Flow {
    let v = g.vcpu(vcpu);
    let is_write = v.control().exit_info_1 == 1;
    let ecx = v.gprs.rcx as u32;
    if ecx != msr::GHCB {
        return kill(g, vcpu, exit::MSR, "MSR access the SVSM does not emulate");
    }
    if is_write {
        v.ghcb_msr = (v.gprs.rdx << 32) | (*v.rax() & 0xffff_ffff);
    } else {
        let val = v.ghcb_msr;
        *v.rax() = val & 0xffff_ffff;
        v.gprs.rdx = val >> 32;
    }
    *v.rip() += 2;
    Flow::Resume
}

fn cpuid(g: &mut Guest, vcpu: usize) -> Flow {
    let plat = g.plat;
    let v = g.vcpu(vcpu);
    let (leaf, sub) = (*v.rax() as u32, v.gprs.rcx as u32);
    let mut r = plat.cpuid(leaf, sub);
    if leaf == 0x8000_0001 {
        r.ecx &= !(1 << 2); // the guest sees no SVM: it cannot nest
    }
    *v.rax() = r.eax as u64;
    v.gprs.rbx = r.ebx as u64;
    v.gprs.rcx = r.ecx as u64;
    v.gprs.rdx = r.edx as u64;
    *v.rip() += 2;
    Flow::Resume
}

fn vmmcall(g: &mut Guest, vcpu: usize) -> Flow {
    let mut code = [0u8; 4];
    let (cr3, rip) = {
        let v = g.vcpu(vcpu);
        (v.cr3(), *v.rip())
    };
    let n = memory::fetch_code(&g.backend.shared.lock().npt, cr3, rip, &mut code);
    let insn = Vmmcall::decode(&code[..n]);
    match insn {
        Vmmcall::Vmgexit => {
            *g.vcpu(vcpu).rip() += insn.insn_len();
            vmgexit(g, vcpu)
        }
        Vmmcall::Plain => {
            // A bare VMMCALL, answered at once: the floor of an exit's cost.
            let v = g.vcpu(vcpu);
            *v.rax() = 0;
            *v.rip() += insn.insn_len();
            Flow::Resume
        }
        Vmmcall::Unknown => kill(
            g,
            vcpu,
            exit::VMMCALL,
            "VMMCALL exit at bytes that are not VMMCALL",
        ),
    }
}

/// VMGEXIT: the GHCB MSR holds an MSR-protocol request or a GHCB's GPA.
fn vmgexit(g: &mut Guest, vcpu: usize) -> Flow {
    match GhcbMsr::decode(g.vcpu(vcpu).ghcb_msr) {
        // Only the SVSM's VMPL (0) can be run.
        GhcbMsr::RunVmpl(vmpl) => {
            let ok = vmpl == 0;
            if ok && let Err(service::CallingAreaFault(gpa)) = service::svsm_call(g, vcpu) {
                crate::println!(
                    "guest: vCPU {vcpu}: its calling area at {gpa:#x} is not guest RAM"
                );
                return kill(
                    g,
                    vcpu,
                    exit::VMMCALL,
                    "SVSM call with an unusable calling area",
                );
            }
            g.vcpu(vcpu).ghcb_msr = run_vmpl_response(ok);
            Flow::Resume
        }
        GhcbMsr::GhcbPage(gpa) => ghcb_call(g, vcpu, gpa),
        GhcbMsr::Other(_) => kill(
            g,
            vcpu,
            exit::VMMCALL,
            "VMGEXIT with a GHCB request the SVSM does not handle",
        ),
    }
}

/// VMGEXIT through a GHCB page: SW_EXITCODE 0x8000_0018 (SNP Run VMPL, both
/// exit infos 0) is an SVSM call; the SVSM answers SW_EXITINFO1 = 0. Only
/// the three fields are copied in, and two written back.
fn ghcb_call(g: &mut Guest, vcpu: usize, ghcb_gpa: u64) -> Flow {
    let exit_fields = ghcb_gpa + offset_of!(Ghcb, sw_exit_code) as u64;
    let mut f = [0u8; 24];
    let read = memory::read(&g.backend.shared.lock().npt, exit_fields, &mut f);
    let word = |i: usize| u64::from_le_bytes(f[i * 8..i * 8 + 8].try_into().unwrap_or([0xff; 8]));
    if read.is_err() || !ghcb_gpa.is_multiple_of(PAGE_SIZE) {
        return kill(
            g,
            vcpu,
            exit::VMMCALL,
            "VMGEXIT with a GHCB outside validated guest RAM",
        );
    }
    if (word(0), word(1), word(2)) != (ghcb_exit::SNP_RUN_VMPL, 0, 0) {
        return kill(
            g,
            vcpu,
            exit::VMMCALL,
            "VMGEXIT with a GHCB request the SVSM does not handle",
        );
    }
    if let Err(service::CallingAreaFault(gpa)) = service::svsm_call(g, vcpu) {
        crate::println!("guest: vCPU {vcpu}: its calling area at {gpa:#x} is not guest RAM");
        return kill(
            g,
            vcpu,
            exit::VMMCALL,
            "SVSM call with an unusable calling area",
        );
    }
    let info = exit_fields + 8;
    if memory::write(&g.backend.shared.lock().npt, info, &[0u8; 16]).is_err() {
        return kill(
            g,
            vcpu,
            exit::VMMCALL,
            "the GHCB page left guest RAM during the call",
        );
    }
    Flow::Resume
}

fn nested_page_fault(g: &mut Guest, vcpu: usize) -> Flow {
    let (info1, gpa) = {
        let c = g.vcpu(vcpu).control();
        (c.exit_info_1, c.exit_info_2)
    };
    let page = gpa & !0xfff;
    let s = g.backend.shared.lock();
    let reason = npf_reason(NpfTarget {
        guest_ram: gpa >= GUEST_RAM_START && s.npt.is_guest_ram(gpa, 1),
        sealed_vmsa: s.is_sealed(page),
        validated: s.covering(page).is_some(),
        write: info1 & npf::WRITE != 0,
    });
    drop(s);
    kill(g, vcpu, exit::NPF, reason)
}
