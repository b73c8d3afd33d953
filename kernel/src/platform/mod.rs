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
    #[allow(dead_code)] // raised by the SNP/TDX implementations
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

/// Everything an AP needs to enter the kernel, in the form each platform
/// consumes: natively the real-mode trampoline loads `cr0`/`cr3`/`cr4`/
/// `efer` and jumps to `entry` with RSP = `stack_top` and RDI = `arg`; on
/// SEV-SNP the same values become the AP's VMSA (RIP, RSP, RDI, the control
/// registers, 64-bit CS) before AP creation; on TDX the multiprocessor
/// wake-up mailbox sends the AP to the trampoline's 64-bit part with them.
/// `cr3` maps the kernel as the boot CPU's tables do and identity maps the
/// trampoline page (`AP_TRAMPOLINE_GPA`); it lies below 4 GiB.
#[derive(Clone, Copy, Debug)]
pub struct ApStartup {
    /// The kernel's index of the CPU (its per-CPU area; SNP keeps a VMSA
    /// per CPU under it).
    #[allow(dead_code)] // read by the SNP implementation
    pub cpu: u32,
    pub apic_id: u32,
    pub entry: u64,
    pub arg: u64,
    pub stack_top: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
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

    /// How many CPUs the VM has (the boot CPU included), as the host
    /// reports it; 1 when it reports nothing usable.
    fn cpu_count(&self) -> u32;

    /// Starts the application processor `ap.apic_id` so that it runs
    /// `ap.entry` in 64-bit mode with `ap.stack_top` and `ap.arg` (see
    /// [`ApStartup`]). Returns once the start was requested; the caller
    /// waits for the AP to report in.
    fn start_cpu(&self, ap: &ApStartup) -> Result<(), PlatformError>;

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
