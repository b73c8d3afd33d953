//! Hosting a guest with AMD-V on the native platform: the SVSM runs the
//! guest's vCPUs itself with VMRUN, maps guest memory through nested page
//! tables (SVSM memory is never in them), and serves the guest's SVSM
//! calls. See docs/guest-host.md.
//!
//! The boot vCPU starts from the VMSA igvm-build packaged at
//! `GUEST_VMSA_GPA`; vCPUs the guest creates (CREATE_VCPU) run on the same
//! SVSM CPU, switched at every exit.

mod backend;
mod console;
mod exit;
mod memory;
mod npt;
mod service;
mod vcpu;

use crate::platform::SvsmPlatform;
use alloc::boxed::Box;
use alloc::vec::Vec;
use backend::{NativeBackend, Slot};
use console::GuestConsole;
use exit::{Flow, Stop};
use npt::Npt;
use spin::Once;
use svsm_bootdefs::ExitCode;
use svsm_bootdefs::channel::ChannelConfig;
use svsm_bootdefs::guest::*;
use svsm_bootdefs::layout::{KERNEL_REGION_END, KERNEL_REGION_START, PAGE_SIZE, phys_to_virt};
use svsm_defs::secrets::SecretsPage;
use svsm_defs::vmsa::Vmsa;
use svsm_protocol::{CoreProtocol, Registry};
use vcpu::Vcpu;
use zerocopy::{FromZeros, IntoBytes};

/// Whether this CPU can host a guest: SVM (CPUID 0x8000_0001 ECX bit 2)
/// with nested paging (0x8000_000A EDX bit 0).
pub fn svm_support(plat: &dyn SvsmPlatform) -> Result<(), &'static str> {
    if plat.cpuid(0x8000_0000, 0).eax < 0x8000_000a {
        return Err("no CPUID leaf 0x8000_000A");
    }
    if plat.cpuid(0x8000_0001, 0).ecx & (1 << 2) == 0 {
        return Err("the CPU has no SVM (CPUID 0x8000_0001 ECX bit 2)");
    }
    if plat.cpuid(0x8000_000a, 0).edx & 1 == 0 {
        return Err("the CPU has SVM without nested paging (CPUID 0x8000_000A EDX bit 0)");
    }
    Ok(())
}

/// The guest: its memory and vCPU records (the backend), the VMCBs of its
/// vCPUs (indexed like the backend's slots; `None` once deleted or
/// halted), and its console.
pub struct Guest {
    plat: &'static dyn SvsmPlatform,
    backend: NativeBackend,
    /// The protocols the channel configuration enables.
    registry: Registry<'static>,
    vcpus: Vec<Option<Box<Vcpu>>>,
    console: GuestConsole,
    /// Exits handled so far.
    exits: u64,
}

/// A zeroed `T` on the heap (page-sized structures never go on a stack).
fn zeroed_box<T: FromZeros>() -> Box<T> {
    // SAFETY: all-zero bytes are a valid `T` (`FromZeros`).
    unsafe { Box::<T>::new_zeroed().assume_init() }
}

/// The packaged boot VMSA, copied once; `None` when no guest is packaged.
fn boot_vmsa() -> Option<Box<Vmsa>> {
    let mut v = zeroed_box::<Vmsa>();
    let bytes = v.as_mut_bytes();
    // SAFETY: the boot-VMSA page is SVSM memory inside the direct map,
    // written only by igvm-build; copied once.
    unsafe {
        core::ptr::copy_nonoverlapping(
            phys_to_virt(GUEST_VMSA_GPA) as *const u8,
            bytes.as_mut_ptr(),
            PAGE_SIZE as usize,
        )
    };
    (v.efer & svsm_defs::cr::Efer::SVME.bits() != 0).then_some(v)
}

/// Runs the packaged guest, if any, to its end; the SVSM's exit code
/// follows from how it ended. `None`: there is no guest to run.
pub fn run(
    plat: &'static dyn SvsmPlatform,
    ram_end: u64,
    cmdline: &str,
    channel: &ChannelConfig,
) -> Option<ExitCode> {
    // Hosting with VMRUN is the native platform's way to run the guest; on
    // SEV-SNP or TDX the hypervisor runs it (and the boot-VMSA page is not
    // the SVSM's to read there).
    if plat.kind() != svsm_bootdefs::PlatformKind::Native {
        log::info!(
            "guest: hosted by the hypervisor on the {} platform",
            plat.kind().name()
        );
        return None;
    }
    let Some(vmsa) = boot_vmsa() else {
        log::info!("guest: none packaged in this image");
        return None;
    };
    if let Err(why) = svm_support(plat) {
        log::info!("guest: cannot host a guest: {why}");
        return None;
    }
    if vmsa.vmpl != channel.guest_vmpl() {
        let want = channel.guest_vmpl();
        println_stop(
            "bad boot VMSA",
            &format_args!("VMPL {} (the channel configuration says {want})", vmsa.vmpl),
        );
        return Some(ExitCode::GuestStopped);
    }
    match launch(plat, ram_end, &vmsa, cmdline, channel) {
        Ok(mut g) => Some(g.run_all()),
        Err(why) => {
            println_stop("launch failed", &why);
            Some(ExitCode::GuestStopped)
        }
    }
}

fn println_stop(what: &str, why: &dyn core::fmt::Display) {
    crate::println!("GUEST-STOP: {what}: {why}");
}

fn launch(
    plat: &'static dyn SvsmPlatform,
    ram_end: u64,
    vmsa: &Vmsa,
    cmdline: &str,
    channel: &ChannelConfig,
) -> Result<Guest, &'static str> {
    let registry = registry(channel);
    vcpu::enable_this_cpu().map_err(|_| "out of memory for the host save area")?;
    let mut npt = Npt::new(GUEST_RAM_START, ram_end).map_err(|_| "out of memory for the NPT")?;
    let prevalidated_end = GUEST_PREVALIDATED_END.min(ram_end);
    let mut gpa = GUEST_RAM_START;
    while gpa < prevalidated_end {
        npt.map(gpa, true)
            .map_err(|_| "cannot map the guest's boot memory")?;
        gpa += PAGE_SIZE;
    }
    write_secrets(&npt, registry.core_max_version(), channel.guest_vmpl())?;
    let mut line = [0u8; GUEST_CMDLINE_SIZE as usize];
    let n = cmdline.len().min(line.len() - 1);
    line[..n].copy_from_slice(&cmdline.as_bytes()[..n]);
    memory::write(&npt, GUEST_CMDLINE_GPA, &line).map_err(|_| "command-line page")?;
    let v = Vcpu::new(vmsa, npt.root()).map_err(|_| "out of memory for the VMCB")?;
    let backend = NativeBackend::new(
        npt,
        GUEST_RAM_START,
        ram_end,
        prevalidated_end,
        channel.guest_vmpl(),
    );
    backend.shared.lock().slots.push(Slot {
        caa: GUEST_CAA_GPA,
        vmsa_gpa: None,
        apic_id: 0,
        start: None,
        deleted: false,
    });
    log::info!(
        "guest: starting at rip {:#x}, RAM {:#x}..{:#x} ({} MiB validated at launch)",
        vmsa.rip,
        GUEST_RAM_START,
        ram_end,
        (prevalidated_end - GUEST_RAM_START) >> 20
    );
    Ok(Guest {
        plat,
        backend,
        registry,
        vcpus: alloc::vec![Some(Box::new(v))],
        console: GuestConsole::default(),
        exits: 0,
    })
}

/// The core protocol: one instance, its locks shared by every vCPU, its
/// PVALIDATE budget from the channel configuration.
static CORE: Once<CoreProtocol> = Once::new();

/// The protocols the channel configuration enables, at the versions both
/// it and this SVSM speak. A listed protocol this SVSM does not implement
/// stays disabled (calls answer UNSUPPORTED_PROTOCOL) and is logged.
fn registry(channel: &ChannelConfig) -> Registry<'static> {
    let core = CORE.call_once(|| CoreProtocol::new(channel.pvalidate_budget()));
    let mut r = Registry::new();
    // One protocol into an empty registry: cannot be a duplicate.
    let _ = r.register(core);
    if let Err(e) = r.apply(channel) {
        log::warn!("guest: channel configuration: {}", RegistryRefusal(e));
    }
    r
}

/// A registry refusal for the log (without Debug formatting).
struct RegistryRefusal(svsm_protocol::registry::RegistryError);

impl core::fmt::Display for RegistryRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use svsm_protocol::registry::RegistryError as E;
        match self.0 {
            E::Duplicate(id) => write!(f, "protocol {id} registered twice"),
            E::Unknown(id) => write!(f, "protocol {id} is not implemented; it stays disabled"),
            E::NoCommonVersion { id, requested } => write!(
                f,
                "protocol {id}: no version in {}-{} is implemented; it stays disabled",
                requested.min, requested.max
            ),
        }
    }
}

/// Fills the SVSM fields of the guest's secrets page (the rest stays zero).
fn write_secrets(npt: &Npt, max_version: u32, vmpl: u8) -> Result<(), &'static str> {
    let mut s = zeroed_box::<SecretsPage>();
    s.svsm_base = KERNEL_REGION_START;
    s.svsm_size = KERNEL_REGION_END - KERNEL_REGION_START;
    s.svsm_caa = GUEST_CAA_GPA;
    s.svsm_max_version = max_version;
    s.svsm_guest_vmpl = vmpl;
    memory::write(npt, GUEST_SECRETS_GPA, s.as_bytes()).map_err(|_| "secrets page")
}

impl Guest {
    /// Runs the vCPUs, switching at every exit, until the guest exits, is
    /// stopped, or every vCPU halted.
    fn run_all(&mut self) -> ExitCode {
        let mut cur = 0;
        loop {
            self.sync_vcpus();
            let Some(next) = self.next_runnable(cur) else {
                return self.stopped("every vCPU halted");
            };
            cur = next;
            let code = self.vcpus[cur].as_mut().expect("runnable").run();
            match exit::handle(self, cur, code) {
                Flow::Resume => {}
                Flow::Stop(Stop::Exited(c)) => return self.exited(c),
                Flow::Stop(Stop::Halted) => {
                    let rip = *self.vcpu(cur).rip();
                    log::info!("guest: vCPU {cur} halted at rip {rip:#x}");
                    self.vcpus[cur] = None;
                }
                Flow::Stop(Stop::Killed(r)) => {
                    self.console.flush();
                    crate::println!("GUEST-STOP vcpu={cur} {r}");
                    return ExitCode::GuestStopped;
                }
            }
            cur += 1;
        }
    }

    fn vcpu(&mut self, i: usize) -> &mut Vcpu {
        self.vcpus[i].as_mut().expect("a running vCPU")
    }

    /// The first vCPU from `from` on (round robin) that has a VMCB.
    fn next_runnable(&self, from: usize) -> Option<usize> {
        let n = self.vcpus.len();
        (0..n)
            .map(|k| (from + k) % n)
            .find(|&i| self.vcpus[i].is_some())
    }

    /// Builds the VMCBs of vCPUs CREATE_VCPU added, drops those of deleted
    /// ones, and passes a pending TLB flush to every vCPU.
    fn sync_vcpus(&mut self) {
        let mut s = self.backend.shared.lock();
        let root = s.npt.root();
        let flush = core::mem::take(&mut s.flush);
        for (i, slot) in s.slots.iter_mut().enumerate() {
            if i >= self.vcpus.len() {
                self.vcpus.push(None);
            }
            if slot.deleted {
                self.vcpus[i] = None;
            } else if let Some(vmsa) = slot.start.take() {
                match Vcpu::new(&vmsa, root) {
                    Ok(v) => {
                        log::info!(
                            "guest: vCPU {i} (APIC ID {}) starts at rip {:#x}",
                            slot.apic_id,
                            vmsa.rip
                        );
                        self.vcpus[i] = Some(Box::new(v));
                    }
                    Err(_) => log::error!("guest: vCPU {i}: out of memory for its VMCB"),
                }
            }
        }
        if flush {
            self.vcpus.iter_mut().flatten().for_each(|v| v.flush_tlb());
        }
    }

    fn exited(&mut self, code: u32) -> ExitCode {
        self.console.flush();
        crate::println!("GUEST-EXIT code={code} exits={}", self.exits);
        if code == 0 {
            ExitCode::Success
        } else {
            ExitCode::TestFailure
        }
    }

    fn stopped(&mut self, why: &str) -> ExitCode {
        self.console.flush();
        crate::println!("GUEST-STOP: {why}");
        ExitCode::GuestStopped
    }
}
