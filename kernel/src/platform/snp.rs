//! SEV-SNP platform: the kernel's side of `svsm_snp`, whose host-tested
//! logic it drives through `ArchSnp` (the SNP instructions of `arch::snp`
//! and the MSRs). Start-up checks SEV_STATUS, the hypervisor and VMPL0,
//! copies and checks the CPUID and secrets pages, and shares and registers
//! the GHCB page (all before the first console output); console I/O then goes through the GHCB, CPUID comes from
//! the checked CPUID page, page validation is PVALIDATE, and the end is a
//! GHCB termination request.
//!
//! #VC (CPUID, port IO, RDMSR/WRMSR of the kernel's own code) is emulated
//! through `handle_vc`, on the #VC IST stack (before the IST stacks exist,
//! on the interrupted stack); any other #VC is a fatal exception. Not yet here (docs/snp.md): AP
//! start-up (`start_ap` is the building block), guest requests.

use super::{ApStartup, PageValidation, PlatformError, SvsmPlatform};
use crate::arch::entry::ExceptionFrame;
use crate::arch::io::{DirectIo, IoPort};
use crate::arch::snp::{PvalidateResult, RmpPageSize};
use crate::arch::x86::{CpuidResult, halt_forever, rdmsr, wrmsr};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::{Mutex, Once};
use svsm_bootdefs::layout::{
    PAGE_SIZE, SNP_C_BIT, SNP_CPUID_PAGE_GPA, SNP_GHCB_GPA, SNP_GHCB_VIRT, SNP_SECRETS_PAGE_GPA,
    phys_to_virt,
};
use svsm_bootdefs::{DEBUG_EXIT_PORT, ExitCode, PlatformKind};
use svsm_defs::cpuid::CpuidPage;
use svsm_defs::ghcb::Ghcb;
use svsm_defs::ghcb::msr_protocol::PageState;
use svsm_defs::msr;
use svsm_defs::paging::PageEncryption;
use svsm_defs::secrets::SecretsPage;
use svsm_defs::vmsa::SevStatus;
use svsm_insn::{FetchFault, Gpr, GuestState, InsnFetch, MemFault, Segment};
use svsm_snp::cpuid::CheckedCpuid;
use svsm_snp::ghcb::{GhcbError, GhcbPage};
use svsm_snp::msr_protocol::{self, TerminationReason, reason};
use svsm_snp::pvalidate::{Validation, validate_range};
use svsm_snp::secrets::{self, SvsmSecrets};
use svsm_snp::vc;
use svsm_snp::{SnpHardware, startup};
use zerocopy::FromBytes;

pub struct SnpPlatform;

/// The SNP instructions and MSRs, for `svsm_snp`.
struct ArchSnp;

impl SnpHardware for ArchSnp {
    fn sev_status(&mut self) -> u64 {
        // SAFETY: SEV_STATUS is read-only and never intercepted; reading it
        // changes nothing (0 where there is no SEV).
        unsafe { rdmsr(msr::SEV_STATUS) }
    }
    fn read_ghcb_msr(&mut self) -> u64 {
        // SAFETY: reading the GHCB MSR changes nothing.
        unsafe { rdmsr(msr::GHCB) }
    }
    fn write_ghcb_msr(&mut self, value: u64) {
        // SAFETY: the GHCB MSR only addresses the hypervisor; `svsm_snp`
        // writes complete MSR-protocol requests or the registered GHCB's GPA.
        unsafe { wrmsr(msr::GHCB, value) }
    }
    fn vmgexit(&mut self, _ghcb: Option<&mut Ghcb>) {
        // SAFETY: the GHCB MSR holds a request `svsm_snp` completed (or the
        // registered GHCB page, filled by it); the mutable borrow of the page
        // keeps anyone else from changing it during the exit.
        unsafe { crate::arch::snp::vmgexit() }
    }
    fn pvalidate(&mut self, va: u64, size: RmpPageSize, validate: bool) -> PvalidateResult {
        // SAFETY: `svsm_snp::pvalidate` reaches here only for pages of the
        // ranges `validate_pages` was given, which the kernel owns.
        unsafe { crate::arch::snp::pvalidate(va, size, validate) }
    }
    fn rmpadjust(&mut self, va: u64, size: RmpPageSize, attrs: u64) -> u32 {
        // SAFETY: used for the VMPL0 probe on a kernel page (VMPL1 granted
        // nothing) and to make an AP's VMSA page a VMSA (`start_ap`, on a
        // page the caller owns and filled): no page is handed to a lower
        // VMPL.
        unsafe { crate::arch::snp::rmpadjust(va, size, attrs) }
    }
    fn zero(&mut self, va: u64, len: u64) {
        // SAFETY: `va..va+len` is a page range of `validate_pages`, owned by
        // the kernel, mapped by the direct map and just validated (or about
        // to be rescinded): nothing else references it.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, len as usize) }
    }
}

/// SEV-ES is active (the GHCB protocol exists): set by start-up.
static SEV_ES: AtomicBool = AtomicBool::new(false);
/// The GHCB page is shared and registered.
static GHCB_READY: AtomicBool = AtomicBool::new(false);
static GHCB_LOCK: Mutex<()> = Mutex::new(());
static CPUID: Mutex<CheckedCpuid> = Mutex::new(CheckedCpuid::new());
static SECRETS: Once<SvsmSecrets> = Once::new();
static DIRECT_IO: DirectIo = DirectIo;
static GHCB_IO: GhcbIo = GhcbIo;

/// Makes the GHCB page shared and registers it (MSR protocol; the page
/// was never validated, so nothing is rescinded first).
fn register_ghcb() -> Result<(), TerminationReason> {
    let mut hw = ArchSnp;
    msr_protocol::page_state_change(&mut hw, SNP_GHCB_GPA, PageState::Shared)
        .map_err(|_| reason::GHCB_FAILURE)?;
    msr_protocol::register_ghcb(&mut hw, SNP_GHCB_GPA).map_err(|_| reason::GHCB_FAILURE)?;
    GHCB_READY.store(true, Ordering::Release);
    Ok(())
}

/// Runs `f` on the registered GHCB page, serialised. On the console's
/// path: kept small, every print goes through it.
fn with_ghcb<T>(f: impl FnOnce(&mut GhcbPage<'_>) -> Result<T, GhcbError>) -> Result<T, GhcbError> {
    if !GHCB_READY.load(Ordering::Acquire) {
        return Err(GhcbError::BadArgument("no GHCB registered"));
    }
    let _lock = GHCB_LOCK.lock();
    // SAFETY: igvm-build maps SNP_GHCB_VIRT (shared, RW) to the GHCB page
    // in the SNP page tables; GHCB_LOCK makes this the only reference.
    let ghcb = unsafe { &mut *(SNP_GHCB_VIRT as *mut Ghcb) };
    let mut page = GhcbPage {
        ghcb,
        gpa: SNP_GHCB_GPA,
    };
    f(&mut page)
}

/// #VC: emulates CPUID, port IO and RDMSR/WRMSR of the kernel's own code
/// (`svsm_snp::vc`, decoding with `svsm_insn`). Nesting policy: the handler
/// and the GHCB path raise no #VC themselves, so a #VC while the GHCB is in
/// use (a #VC inside #VC, or inside a console write) finds it locked and is
/// fatal, never nested.
fn handle_vc(frame: &mut ExceptionFrame) -> bool {
    let bi = crate::bootinfo::get();
    let text = bi.kernel_image_virt..bi.kernel_image_virt + bi.kernel_image_size;
    if !text.contains(&frame.rip) || !GHCB_READY.load(Ordering::Acquire) {
        return false;
    }
    let Some(_lock) = GHCB_LOCK.try_lock() else {
        return false;
    };
    // SAFETY: as in `with_ghcb`; GHCB_LOCK is held.
    let ghcb = unsafe { &mut *(SNP_GHCB_VIRT as *mut Ghcb) };
    let mut page = GhcbPage {
        ghcb,
        gpa: SNP_GHCB_GPA,
    };
    let Some(cpuid) = CPUID.try_lock() else {
        return false;
    };
    let mut fetch = KernelText { text };
    let code = frame.error_code;
    // The kernel maps no MMIO on SNP yet: a nested page fault stays fatal
    // until a device mapping gives its linear-to-GPA translation here.
    let mut no_mmio = |_| None;
    vc::handle(
        &mut ArchSnp,
        &mut page,
        &cpuid,
        code,
        &mut fetch,
        &mut VcFrame(frame),
        &mut no_mmio,
    )
    .is_ok()
}

/// Instruction bytes of the kernel image (mapped and readable to its end),
/// copied out for the decoder.
struct KernelText {
    text: core::ops::Range<u64>,
}

impl InsnFetch for KernelText {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, FetchFault> {
        if !self.text.contains(&addr) {
            return Err(FetchFault { addr });
        }
        let n = buf.len().min((self.text.end - addr) as usize);
        // SAFETY: `addr..addr+n` lies in the kernel image, mapped and
        // readable; the bytes are copied, never referenced.
        let src = unsafe { core::slice::from_raw_parts(addr as *const u8, n) };
        buf[..n].copy_from_slice(src);
        Ok(n)
    }
}

/// The interrupted kernel context of a #VC, for the emulator. The kernel
/// does no string IO, so INS/OUTS memory operands are refused (a fatal
/// #VC) rather than written through unchecked kernel addresses.
struct VcFrame<'a>(&'a mut ExceptionFrame);

impl VcFrame<'_> {
    fn slot(&mut self, r: Gpr) -> &mut u64 {
        let f = &mut *self.0;
        match r.0 {
            0 => &mut f.rax,
            1 => &mut f.rcx,
            2 => &mut f.rdx,
            3 => &mut f.rbx,
            4 => &mut f.rsp,
            5 => &mut f.rbp,
            6 => &mut f.rsi,
            7 => &mut f.rdi,
            8 => &mut f.r8,
            9 => &mut f.r9,
            10 => &mut f.r10,
            11 => &mut f.r11,
            12 => &mut f.r12,
            13 => &mut f.r13,
            14 => &mut f.r14,
            _ => &mut f.r15,
        }
    }
}

impl GuestState for VcFrame<'_> {
    fn gpr(&self, r: Gpr) -> u64 {
        let f = &*self.0;
        [
            f.rax, f.rcx, f.rdx, f.rbx, f.rsp, f.rbp, f.rsi, f.rdi, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15,
        ][usize::from(r.0 & 15)]
    }
    fn set_gpr(&mut self, r: Gpr, value: u64) {
        *self.slot(r) = value;
    }
    fn rip(&self) -> u64 {
        self.0.rip
    }
    fn set_rip(&mut self, rip: u64) {
        self.0.rip = rip;
    }
    fn rflags(&self) -> u64 {
        self.0.rflags
    }
    fn segment_base(&self, _: Segment) -> u64 {
        // The kernel's FS/GS bases are unused by its IO code.
        0
    }
    fn read_memory(&mut self, linear: u64, _: &mut [u8]) -> Result<(), MemFault> {
        Err(MemFault { addr: linear })
    }
    fn write_memory(&mut self, linear: u64, _: &[u8]) -> Result<(), MemFault> {
        Err(MemFault { addr: linear })
    }
}

/// A failed GHCB request: the hypervisor misbehaves; end the guest.
fn ghcb_fatal() -> ! {
    terminate(reason::GHCB_FAILURE)
}

fn terminate(why: TerminationReason) -> ! {
    msr_protocol::request_termination(&mut ArchSnp, why);
    halt_forever()
}

/// Port I/O through the GHCB (IOIO requests).
struct GhcbIo;

impl IoPort for GhcbIo {
    unsafe fn outb(&self, port: u16, val: u8) {
        with_ghcb(|g| g.ioio(&mut ArchSnp, port, 1, Some(u32::from(val))))
            .unwrap_or_else(|_| ghcb_fatal());
    }
    unsafe fn inb(&self, port: u16) -> u8 {
        with_ghcb(|g| g.ioio(&mut ArchSnp, port, 1, None)).unwrap_or_else(|_| ghcb_fatal()) as u8
    }
    unsafe fn outl(&self, port: u16, val: u32) {
        with_ghcb(|g| g.ioio(&mut ArchSnp, port, 4, Some(val))).unwrap_or_else(|_| ghcb_fatal());
    }
}

/// The CPUID and secrets pages, checked and copied once.
fn read_launch_pages() -> Result<(), TerminationReason> {
    // SAFETY: the launch validated both pages (IGVM CPUID and secrets page
    // data); the direct map covers them, private; nothing writes them.
    let cpuid = unsafe { &*(phys_to_virt(SNP_CPUID_PAGE_GPA) as *const [u8; PAGE_SIZE as usize]) };
    let cpuid = CpuidPage::ref_from_bytes(cpuid).map_err(|_| reason::BAD_CPUID_PAGE)?;
    CPUID
        .lock()
        .check_into(cpuid, SNP_C_BIT)
        .map_err(|_| reason::BAD_CPUID_PAGE)?;
    // SAFETY: as above, for the secrets page.
    let page = unsafe { &*(phys_to_virt(SNP_SECRETS_PAGE_GPA) as *const [u8; PAGE_SIZE as usize]) };
    let page = SecretsPage::ref_from_bytes(page).map_err(|_| reason::BAD_SECRETS_PAGE)?;
    let kept = secrets::check(page).map_err(|_| reason::BAD_SECRETS_PAGE)?;
    SECRETS.call_once(|| kept);
    Ok(())
}

/// Starts the vCPU with `apic_id` on the VMSA page mapped at `vmsa_va`
/// (guest-physical `vmsa_gpa`), which the caller filled with
/// `svsm_snp::ap::fill_vmsa` (the boot CPU's SEV features): the page
/// becomes a VMSA (RMPADJUST) and the hypervisor runs it (GHCB AP
/// creation). SMP bring-up's `start_cpu`, whichever its signature, calls
/// this once it has a VMSA per AP.
#[allow(dead_code)]
pub fn start_ap(apic_id: u32, vmsa_va: u64, vmsa_gpa: u64) -> Result<(), PlatformError> {
    let features = svsm_snp::ap::SVSM_SEV_FEATURES;
    with_ghcb(|g| {
        svsm_snp::ap::start(&mut ArchSnp, g, apic_id, vmsa_va, vmsa_gpa, features)
            .map_err(|_| GhcbError::Failed(vmsa_gpa))
    })
    .map_err(|_| PlatformError::Failed(vmsa_gpa))
}

impl SvsmPlatform for SnpPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Snp
    }

    fn io(&self) -> &'static dyn IoPort {
        // Before start-up found SEV-ES (or where there is none: the boot
        // info named SNP on other hardware), reports use direct port I/O.
        if SEV_ES.load(Ordering::Acquire) {
            &GHCB_IO
        } else {
            &DIRECT_IO
        }
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = CPUID.lock().lookup(leaf, subleaf).unwrap_or_default();
        CpuidResult {
            eax: r[0],
            ebx: r[1],
            ecx: r[2],
            edx: r[3],
        }
    }

    fn page_encryption(&self) -> PageEncryption {
        PageEncryption::snp(SNP_C_BIT).unwrap_or(PageEncryption::NONE)
    }

    fn validate_pages(
        &self,
        start: u64,
        len: u64,
        state: PageValidation,
    ) -> Result<(), PlatformError> {
        // Physical ranges through the direct map: guard pages are virtual
        // holes with no frame behind them, so none is ever validated.
        let op = match state {
            PageValidation::Valid => Validation::Validate,
            PageValidation::Invalid => Validation::Rescind,
        };
        validate_range(&mut ArchSnp, phys_to_virt(start), len, op, &[])
            .map_err(|_| PlatformError::Failed(start))
    }

    fn setup_exception_handling(&self) -> Result<(), PlatformError> {
        let status = SevStatus::from_bits_retain(ArchSnp.sev_status());
        if !status.contains(SevStatus::SEV_ES) {
            // No GHCB to terminate through: not an SEV-ES/SNP guest at all.
            return Err(PlatformError::NotPresent(status.bits()));
        }
        SEV_ES.store(true, Ordering::Release);
        // The VMPL0 probe runs on the GHCB's neighbour, the CPUID page: a
        // private page the kernel owns and only reads.
        startup::start_or_terminate(&mut ArchSnp, phys_to_virt(SNP_CPUID_PAGE_GPA))
            .unwrap_or_else(|_| halt_forever());
        read_launch_pages().unwrap_or_else(|why| terminate(why));
        register_ghcb().unwrap_or_else(|why| terminate(why));
        Ok(())
    }

    fn handle_vc(&self, frame: &mut ExceptionFrame) -> bool {
        handle_vc(frame)
    }

    /// One CPU until AP creation (a VMSA per AP from `ApStartup`) exists here.
    fn cpu_count(&self) -> u32 {
        1
    }

    fn start_cpu(&self, _ap: &ApStartup) -> Result<(), PlatformError> {
        Err(PlatformError::Unsupported)
    }

    fn shutdown(&self, code: ExitCode) -> ! {
        if SEV_ES.load(Ordering::Acquire) {
            terminate(TerminationReason {
                set: reason::SVSM_SET,
                code: 0x80 | (code as u32 as u8 & 0x7f),
            })
        }
        // SAFETY: not an SEV-ES guest (SEV_STATUS said so): the debug-exit
        // port is plain port I/O as on the native platform.
        unsafe { DIRECT_IO.outl(DEBUG_EXIT_PORT, code as u32) };
        halt_forever()
    }
}
