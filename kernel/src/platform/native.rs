//! Native platform: plain QEMU/KVM without memory encryption.

use super::{ApStartup, PageValidation, PlatformError, SvsmPlatform};
use crate::arch::apic;
use crate::arch::io::{DirectIo, IoPort};
use crate::arch::startup::{self, TrampolineParams};
use crate::arch::x86::CpuidResult;
use svsm_bootdefs::layout::{AP_TRAMPOLINE_GPA, PAGE_SIZE};
use svsm_bootdefs::{DEBUG_EXIT_PORT, ExitCode, PlatformKind};
use svsm_defs::apic::Ipi;
use svsm_defs::paging::PageEncryption;

pub struct NativePlatform;

static DIRECT_IO: DirectIo = DirectIo;

/// QEMU's fw_cfg I/O interface (docs/specs/fw_cfg.rst in QEMU).
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_NB_CPUS: u16 = 0x0005;

impl SvsmPlatform for NativePlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Native
    }

    fn io(&self) -> &'static dyn IoPort {
        &DIRECT_IO
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        crate::arch::x86::cpuid(leaf, subleaf)
    }

    fn page_encryption(&self) -> PageEncryption {
        PageEncryption::NONE
    }

    fn validate_pages(
        &self,
        start: u64,
        len: u64,
        _state: PageValidation,
    ) -> Result<(), PlatformError> {
        // Memory needs no validation natively; still reject malformed ranges so
        // callers behave the same as on SNP/TDX.
        if !start.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(PlatformError::Invalid);
        }
        Ok(())
    }

    fn setup_exception_handling(&self) -> Result<(), PlatformError> {
        Ok(())
    }

    /// The count QEMU passes in fw_cfg (`FW_CFG_NB_CPUS`, its `-smp` value):
    /// without firmware there is no MADT to read. No fw_cfg (not QEMU): 1.
    fn cpu_count(&self) -> u32 {
        // SAFETY: the fw_cfg selector and data ports belong to the platform
        // and only this function uses them (selecting an item has no effect
        // beyond the data port).
        let read = |key: u16, n: usize| unsafe {
            DIRECT_IO.outw(FW_CFG_SELECTOR, key);
            (0..n).fold(0u32, |v, i| {
                v | (DIRECT_IO.inb(FW_CFG_DATA) as u32) << (8 * i)
            })
        };
        if read(FW_CFG_SIGNATURE, 4) != u32::from_le_bytes(*b"QEMU") {
            return 1;
        }
        read(FW_CFG_NB_CPUS, 2).max(1)
    }

    /// INIT, then two start-up IPIs pointing at the trampoline page (the
    /// second is ignored by a CPU that already left wait-for-SIPI). QEMU
    /// needs none of the SDM's delays between them; the caller's wait for
    /// the AP bounds the start-up instead.
    fn start_cpu(&self, ap: &ApStartup) -> Result<(), PlatformError> {
        let sipi = Ipi::startup(ap.apic_id, AP_TRAMPOLINE_GPA).ok_or(PlatformError::Invalid)?;
        if ap.cr3 >> 32 != 0 {
            return Err(PlatformError::Invalid);
        }
        let mut p = TrampolineParams::new();
        p.cr0 = ap.cr0;
        p.cr3 = ap.cr3;
        p.cr4 = ap.cr4;
        p.efer = ap.efer;
        p.entry = ap.entry;
        p.stack_top = ap.stack_top;
        p.arg = ap.arg;
        // SAFETY: the trampoline page is reserved for AP start-up, and the
        // caller starts one AP at a time (the previous one has left it).
        unsafe { startup::install(&p) };
        // SAFETY: the destination is an AP that has not started: INIT keeps
        // it waiting, the SIPIs run the trampoline just written.
        let sent =
            unsafe { apic::send(Ipi::init(ap.apic_id)) && apic::send(sipi) && apic::send(sipi) };
        if sent {
            Ok(())
        } else {
            Err(PlatformError::Invalid)
        }
    }

    fn shutdown(&self, code: ExitCode) -> ! {
        // SAFETY: the isa-debug-exit port belongs to the platform; writing it
        // ends the VM.
        unsafe { DIRECT_IO.outl(DEBUG_EXIT_PORT, code as u32) };
        // Without isa-debug-exit (real hardware) we simply stop.
        crate::arch::x86::halt_forever()
    }
}
