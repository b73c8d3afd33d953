//! Host helpers shared by the host-stack test and the benchmark: the loaded
//! images' CFI (via `dl_iterate_phdr`), a stack accessor restricted to the
//! current thread's stack, register capture, and libgcc's unwinder.
#![allow(dead_code)]

pub mod synth;

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use svsm_unwinder::{CfiSections, Memory, Module, UnwindTable};

/// Every loaded image's CFI sections, found through `PT_GNU_EH_FRAME`
/// (those gimli accepts).
pub fn host_sections() -> &'static [CfiSections<'static>] {
    static SECTIONS: OnceLock<Vec<CfiSections<'static>>> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        let mut sections: Vec<CfiSections<'static>> = Vec::new();
        // SAFETY: dl_iterate_phdr calls `collect` synchronously with valid
        // `dl_phdr_info` pointers; `sections` outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(collect), (&raw mut sections).cast());
        }
        sections.retain(|s| Module::new(*s).is_ok());
        sections
    })
}

/// Every loaded image's CFI, found through `PT_GNU_EH_FRAME`.
pub fn host_modules() -> &'static [Module<'static>] {
    static MODULES: OnceLock<Vec<Module<'static>>> = OnceLock::new();
    MODULES.get_or_init(|| {
        host_sections()
            .iter()
            .map(|s| Module::new(*s).unwrap())
            .collect()
    })
}

/// Every loaded image's compact unwind table, compiled from its CFI (same
/// order as [`host_modules`]).
pub fn host_tables() -> &'static [UnwindTable<'static>] {
    static TABLES: OnceLock<Vec<UnwindTable<'static>>> = OnceLock::new();
    TABLES.get_or_init(|| {
        host_modules()
            .iter()
            .map(|m| {
                let bytes: &'static [u8] = Box::leak(
                    svsm_unwinder::compile::compile(m)
                        .expect("compile host CFI")
                        .bytes
                        .into_boxed_slice(),
                );
                UnwindTable::parse(bytes).expect("parse host table")
            })
            .collect()
    })
}

/// [`host_modules`], each using its compact table with gimli as the
/// fallback.
pub fn host_modules_with_tables() -> &'static [Module<'static>] {
    static MODULES: OnceLock<Vec<Module<'static>>> = OnceLock::new();
    MODULES.get_or_init(|| {
        host_sections()
            .iter()
            .zip(host_tables())
            .map(|(s, t)| {
                let m = Module::new(*s).unwrap().with_table(*t);
                assert!(m.table().is_some(), "table does not fit its module");
                m
            })
            .collect()
    })
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: called by dl_iterate_phdr with a valid info and our `data`.
    let (info, out) = unsafe { (&*info, &mut *data.cast::<Vec<CfiSections<'static>>>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let bias = info.dlpi_addr;
    let Some(eh) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
        return 0;
    };
    let hdr_addr = bias + eh.p_vaddr;
    // SAFETY: the PT_GNU_EH_FRAME segment is mapped read-only for as long as
    // the image stays loaded (the whole test run for these images).
    let hdr: &'static [u8] =
        unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, eh.p_memsz as usize) };
    let bases = gimli::BaseAddresses::default().set_eh_frame_hdr(hdr_addr);
    let Ok(parsed) = gimli::EhFrameHdr::new(hdr, gimli::LittleEndian).parse(&bases, 8) else {
        return 0;
    };
    let Ok(eh_frame_addr) = parsed.eh_frame_ptr().direct() else {
        return 0;
    };
    // .eh_frame runs at most to the end of the PT_LOAD segment holding it.
    let Some(seg) = phdrs.iter().find(|p| {
        p.p_type == libc::PT_LOAD
            && eh_frame_addr >= bias + p.p_vaddr
            && eh_frame_addr < bias + p.p_vaddr + p.p_memsz
    }) else {
        return 0;
    };
    let len = (bias + seg.p_vaddr + seg.p_memsz - eh_frame_addr) as usize;
    // SAFETY: within a mapped, readable PT_LOAD segment of a loaded image.
    let eh_frame: &'static [u8] =
        unsafe { std::slice::from_raw_parts(eh_frame_addr as *const u8, len) };
    out.push(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: hdr_addr,
        eh_frame,
        eh_frame_addr,
    });
    0
}

/// Reads only inside the current thread's stack.
pub struct ThreadStack {
    pub lo: u64,
    pub hi: u64,
}

impl ThreadStack {
    pub fn current() -> Self {
        // SAFETY: pthread_getattr_np fills `attr` for the calling thread; it
        // is destroyed after use. All pointers are to locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
            let mut addr: *mut c_void = std::ptr::null_mut();
            let mut size: usize = 0;
            assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
            libc::pthread_attr_destroy(&mut attr);
            ThreadStack {
                lo: addr as u64,
                hi: addr as u64 + size as u64,
            }
        }
    }
}

impl Memory for ThreadStack {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr > self.hi.checked_sub(8)? {
            return None;
        }
        // SAFETY: [addr, addr+8) lies inside this thread's mapped stack.
        Some(unsafe { std::ptr::read_volatile(addr as *const u64) })
    }
}

#[link(name = "gcc_s")]
unsafe extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    fn _Unwind_GetCFA(ctx: *mut c_void) -> usize;
}

/// `_URC_END_OF_STACK`
pub const URC_END_OF_STACK: c_int = 5;

extern "C" fn trace_cb(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&mut Vec` passed to `_Unwind_Backtrace` below and
    // `ctx` is libgcc's live context for this callback.
    unsafe {
        let out = &mut *arg.cast::<Vec<(u64, u64)>>();
        out.push((_Unwind_GetIP(ctx) as u64, _Unwind_GetCFA(ctx) as u64));
    }
    0
}

/// libgcc's backtrace from the caller: (pc, cfa as libgcc reports it) per
/// frame, and libgcc's return code.
#[inline(never)]
pub fn libgcc_backtrace(out: &mut Vec<(u64, u64)>) -> c_int {
    // SAFETY: the callback matches libgcc's trace-function ABI and `out`
    // stays valid for the duration of the call.
    unsafe { _Unwind_Backtrace(trace_cb, (out as *mut Vec<(u64, u64)>).cast()) }
}
