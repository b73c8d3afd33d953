//! One guest vCPU: its VMCB (one frame of SVSM memory), the registers VMRUN
//! does not switch, and the per-CPU AMD-V set-up (EFER.SVME, the host save
//! area) and the shared intercept maps.

use crate::arch::svm::{GuestGprs, vmrun};
use crate::arch::x86::{rdmsr, wrmsr};
use crate::cpu::percpu::{MAX_CPUS, this_cpu};
use crate::mm::frames;
use core::mem::offset_of;
use spin::Once;
use svsm_bootdefs::layout::phys_to_virt;
use svsm_defs::cr::Efer;
use svsm_defs::msr;
use svsm_defs::vmcb::{
    IOPM_SIZE, MSRPM_SIZE, NP_ENABLE, TLB_CONTROL_FLUSH_ALL, V_INTR_MASKING, VMCB_SAVE_OFFSET,
    VmcbControl, intercept1, intercept2,
};
use svsm_defs::vmsa::Vmsa;
use zerocopy::{FromBytes, IntoBytes};

/// The guest ASID (ASID 0 is the host's).
const GUEST_ASID: u32 = 1;
/// Bytes of the VMSA that form the plain SVM save area in the VMCB (up to
/// the SEV-ES-only fields: PKRU at 0x2e8 onwards).
const SVM_SAVE_BYTES: usize = offset_of!(Vmsa, pkru);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    OutOfMemory,
}

/// Host save area per CPU (VM_HSAVE_PA), allocated on first use.
static HSAVE: [Once<u64>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];
/// The I/O and MSR permission maps: every port and MSR intercepted.
static PERMISSION_MAPS: Once<(u64, u64)> = Once::new();

fn alloc_filled(pages: usize, byte: u8) -> Result<u64, SetupError> {
    let pa = frames::alloc_frames(pages)
        .ok_or(SetupError::OutOfMemory)?
        .as_u64();
    // SAFETY: frames just allocated for this map alone, in the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, byte, pages * 4096) };
    Ok(pa)
}

/// Enables AMD-V on this CPU: EFER.SVME and its host save area.
pub fn enable_this_cpu() -> Result<(), SetupError> {
    let cpu = this_cpu().cpu_id() as usize;
    let hsave = *HSAVE[cpu].try_call_once(|| alloc_filled(1, 0))?;
    // SAFETY: EFER and VM_HSAVE_PA exist on a CPU with SVM (checked by the
    // caller); setting SVME only allows the SVM instructions, and the host
    // save area is a frame owned by this CPU for good.
    unsafe {
        wrmsr(msr::EFER, rdmsr(msr::EFER) | Efer::SVME.bits());
        wrmsr(msr::VM_HSAVE_PA, hsave);
    }
    Ok(())
}

fn permission_maps() -> Result<(u64, u64), SetupError> {
    PERMISSION_MAPS
        .try_call_once(|| Ok((alloc_filled(3, 0xff)?, alloc_filled(2, 0xff)?)))
        .copied()
}

const _: () = assert!(IOPM_SIZE == 3 * 4096 && MSRPM_SIZE == 2 * 4096);

pub struct Vcpu {
    vmcb_pa: u64,
    pub gprs: GuestGprs,
    /// The guest's GHCB MSR (0xC001_0130): an MSR-protocol request, the
    /// SVSM's response, or a GHCB GPA.
    pub ghcb_msr: u64,
}

impl Vcpu {
    /// A vCPU starting from `vmsa` (a copy; its SVM part goes into a fresh
    /// VMCB, its other general-purpose registers into `gprs`).
    pub fn new(vmsa: &Vmsa, n_cr3: u64) -> Result<Self, SetupError> {
        let (iopm, msrpm) = permission_maps()?;
        let vmcb_pa = frames::alloc_frame()
            .ok_or(SetupError::OutOfMemory)?
            .as_u64();
        let mut v = Self {
            vmcb_pa,
            gprs: GuestGprs {
                rbx: vmsa.rbx,
                rcx: vmsa.rcx,
                rdx: vmsa.rdx,
                rsi: vmsa.rsi,
                rdi: vmsa.rdi,
                rbp: vmsa.rbp,
                r8: vmsa.r8,
                r9: vmsa.r9,
                r10: vmsa.r10,
                r11: vmsa.r11,
                r12: vmsa.r12,
                r13: vmsa.r13,
                r14: vmsa.r14,
                r15: vmsa.r15,
            },
            ghcb_msr: 0,
        };
        v.page()[VMCB_SAVE_OFFSET..VMCB_SAVE_OFFSET + SVM_SAVE_BYTES]
            .copy_from_slice(&vmsa.as_bytes()[..SVM_SAVE_BYTES]);
        let c = v.control();
        c.intercept_exceptions = 0xffff_ffff;
        c.intercept_misc1 = intercept1::INTR
            | intercept1::NMI
            | intercept1::SMI
            | intercept1::INIT
            | intercept1::CPUID
            | intercept1::HLT
            | intercept1::IOIO_PROT
            | intercept1::MSR_PROT
            | intercept1::SHUTDOWN;
        c.intercept_misc2 = intercept2::VMRUN
            | intercept2::VMMCALL
            | intercept2::VMLOAD
            | intercept2::VMSAVE
            | intercept2::STGI
            | intercept2::CLGI
            | intercept2::SKINIT;
        c.iopm_base_pa = iopm;
        c.msrpm_base_pa = msrpm;
        c.guest_asid = GUEST_ASID;
        c.tlb_control = TLB_CONTROL_FLUSH_ALL;
        c.vintr = V_INTR_MASKING;
        c.np_enable = NP_ENABLE;
        c.n_cr3 = n_cr3;
        Ok(v)
    }

    fn page(&mut self) -> &mut [u8; 4096] {
        // SAFETY: the VMCB frame belongs to this vCPU alone (SVSM memory);
        // the hardware touches it only inside `run`, which borrows `self`.
        unsafe { &mut *(phys_to_virt(self.vmcb_pa) as *mut [u8; 4096]) }
    }

    pub fn control(&mut self) -> &mut VmcbControl {
        match VmcbControl::mut_from_bytes(&mut self.page()[..VMCB_SAVE_OFFSET]) {
            Ok(c) => c,
            Err(_) => unreachable!("the control area is the VMCB's first 0x400 bytes"),
        }
    }

    fn save_u64(&mut self, off: usize) -> &mut u64 {
        let b = &mut self.page()[VMCB_SAVE_OFFSET + off..VMCB_SAVE_OFFSET + off + 8];
        match u64::mut_from_bytes(b) {
            Ok(v) => v,
            Err(_) => unreachable!("save-area fields are 8 aligned bytes"),
        }
    }

    pub fn rip(&mut self) -> &mut u64 {
        self.save_u64(offset_of!(Vmsa, rip))
    }

    pub fn rax(&mut self) -> &mut u64 {
        self.save_u64(offset_of!(Vmsa, rax))
    }

    pub fn cr3(&mut self) -> u64 {
        *self.save_u64(offset_of!(Vmsa, cr3))
    }

    /// Flushes the guest's translations on the next VMRUN (after an NPT
    /// entry was removed or made read-only).
    pub fn flush_tlb(&mut self) {
        self.control().tlb_control = TLB_CONTROL_FLUSH_ALL;
    }

    /// Runs the guest until its next #VMEXIT; returns the exit code.
    pub fn run(&mut self) -> u64 {
        let pa = self.vmcb_pa;
        // SAFETY: `enable_this_cpu` ran on this CPU (the caller's first
        // step), the VMCB is this vCPU's, and its nested page tables map
        // guest RAM only (`Npt::map` refuses anything else).
        unsafe { vmrun(pa, &mut self.gprs) };
        let c = self.control();
        c.tlb_control = 0;
        c.exit_code
    }
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        frames::free_frames(svsm_defs::PhysAddr::new(self.vmcb_pa), 1);
    }
}
