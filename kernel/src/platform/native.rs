//! Native platform: plain QEMU/KVM without memory encryption.

use super::{PageValidation, PlatformError, SvsmPlatform};
use crate::arch::io::{DirectIo, IoPort};
use crate::arch::x86::CpuidResult;
use svsm_bootdefs::{DEBUG_EXIT_PORT, ExitCode, PlatformKind, layout::PAGE_SIZE};
use svsm_defs::paging::PageEncryption;

pub struct NativePlatform;

static DIRECT_IO: DirectIo = DirectIo;

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

    fn start_cpu(&self, _cpu: u32, _entry: u64, _stack_top: u64) -> Result<(), PlatformError> {
        Err(PlatformError::Unsupported)
    }

    fn shutdown(&self, code: ExitCode) -> ! {
        // SAFETY: the isa-debug-exit port belongs to the platform; writing it
        // ends the VM.
        unsafe { DIRECT_IO.outl(DEBUG_EXIT_PORT, code as u32) };
        // Without isa-debug-exit (real hardware) we simply stop.
        crate::arch::x86::halt_forever()
    }
}
