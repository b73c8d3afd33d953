//! Native platform: plain QEMU/KVM without memory encryption.

use super::{PageValidation, PlatformError, SvsmPlatform};
use crate::io::{DirectIo, IoPort};
use svsm_bootdefs::{DEBUG_EXIT_PORT, ExitCode, PlatformKind, layout::PAGE_SIZE};

pub struct NativePlatform;

static DIRECT_IO: DirectIo = DirectIo;

impl SvsmPlatform for NativePlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Native
    }

    fn io(&self) -> &'static dyn IoPort {
        &DIRECT_IO
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
        DIRECT_IO.outl(DEBUG_EXIT_PORT, code as u32);
        // Without isa-debug-exit (real hardware) we simply stop.
        crate::cpu::halt_forever()
    }
}
