//! The kernel's copy of the boot info (igvm-build wrote the original into
//! the boot-info page; stage2 passes its address).

use spin::Once;
use svsm_bootdefs::BootInfo;

static BOOT_INFO: Once<BootInfo> = Once::new();

/// Keeps `bi` as the boot info (the first call wins) and returns it.
pub fn init(bi: BootInfo) -> &'static BootInfo {
    BOOT_INFO.call_once(|| bi)
}

/// The boot info, once `init` ran.
pub fn get() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info not initialised")
}
