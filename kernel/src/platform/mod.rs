//! The platform abstraction. Native (plain QEMU) is the test platform; SEV-SNP
//! and TDX implement the same trait later. What differs per platform: how
//! guest pages are validated (PVALIDATE / TDG.MEM.PAGE.ACCEPT / nothing), how
//! console I/O reaches the host (direct port I/O / GHCB IOIO via #VC /
//! TDVMCALL via #VE), which exceptions need handlers (#VC, #VE), how other CPUs
//! are started (VMSA + AP creation / TDX multiprocessor wake-up / INIT-SIPI),
//! and how the machine shuts down.

pub mod native;
pub mod snp;

use crate::arch::entry::ExceptionFrame;
use crate::arch::io::IoPort;
use crate::arch::x86::CpuidResult;
use spin::Once;
use svsm_bootdefs::{ExitCode, PlatformKind};
use svsm_defs::paging::PageEncryption;
use svsm_kernel::platform_choice::{self, Implementation, PlatformRefused};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The operation does not exist on this platform (yet).
    Unsupported,
    /// The hardware/firmware refused (e.g. PVALIDATE failed).
    #[allow(dead_code)] // raised by the SNP/TDX implementations
    Failed(u64),
    /// Bad arguments (unaligned range, out of bounds).
    Invalid,
    /// The hardware is not the platform the boot info names (SNP: the
    /// SEV_STATUS value, without SEV-ES).
    NotPresent(u64),
}

/// Whether a page becomes usable by the SVSM or is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageValidation {
    Valid,
    /// Released (e.g. memory handed back to the guest on SNP/TDX).
    #[allow(dead_code)]
    Invalid,
}

pub trait SvsmPlatform: Sync {
    fn kind(&self) -> PlatformKind;

    /// Port I/O as the platform provides it (direct, or emulated via GHCB/TDVMCALL).
    fn io(&self) -> &'static dyn IoPort;

    /// CPUID as the platform provides it (the instruction natively; the
    /// checked CPUID page on SNP, where the instruction traps).
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;

    /// The encryption bits of page-table entries (the SNP C-bit, the TDX
    /// shared bit; none natively).
    fn page_encryption(&self) -> PageEncryption;

    /// Validates or invalidates the 4 KiB-aligned guest-physical range.
    fn validate_pages(
        &self,
        start: u64,
        len: u64,
        state: PageValidation,
    ) -> Result<(), PlatformError>;

    /// Installs platform-specific exception handling (#VC on SNP, #VE on TDX).
    fn setup_exception_handling(&self) -> Result<(), PlatformError>;

    /// Emulates the instruction behind a #VC (SNP) and returns true when
    /// the interrupted code can resume; false makes it a fatal exception.
    fn handle_vc(&self, _frame: &mut ExceptionFrame) -> bool {
        false
    }

    /// Starts an application processor at the given 64-bit entry with its
    /// stack. Used by SMP bring-up (VP_COUNT > 1), which comes with SNP/TDX.
    #[allow(dead_code)]
    fn start_cpu(&self, cpu: u32, entry: u64, stack_top: u64) -> Result<(), PlatformError>;

    /// Ends the SVSM with an exit code the host can see.
    fn shutdown(&self, code: ExitCode) -> !;
}

static NATIVE: native::NativePlatform = native::NativePlatform;
static SNP: snp::SnpPlatform = snp::SnpPlatform;
static CHOSEN: Once<&'static dyn SvsmPlatform> = Once::new();

/// Chooses the implementation for the boot info's platform value (the IGVM
/// platform igvm-build packaged for), once, at boot. A platform without an
/// implementation here is refused, never run as another one.
pub fn choose(platform: u32) -> Result<&'static dyn SvsmPlatform, PlatformRefused> {
    let p: &'static dyn SvsmPlatform = match platform_choice::choose(platform)? {
        Implementation::Native => &NATIVE,
        Implementation::Snp => &SNP,
    };
    Ok(*CHOSEN.call_once(|| p))
}

/// The platform chosen at boot. Before the choice, only a boot failure
/// report can run (the boot info names no usable platform); it goes through
/// the native console and exit port, which reach the host on the native
/// platform. On SNP or TDX hardware that port I/O traps (#VC/#VE) into the
/// early exception handler instead, and the boot stops there.
pub fn platform() -> &'static dyn SvsmPlatform {
    CHOSEN.get().copied().unwrap_or(&NATIVE)
}

/// Ends the SVSM through the platform (isa-debug-exit natively).
pub fn shutdown(code: ExitCode) -> ! {
    platform().shutdown(code)
}
