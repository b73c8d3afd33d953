//! Building the IGVM file: all layout work for stage2 and the kernel happens
//! here, on the host, so stage2 stays tiny.

use crate::elf::{self, ElfImage};
use crate::paging::{Access, PageTableBuilder};
use anyhow::{Context, Result, bail};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
    IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use svsm_bootdefs::config;
use svsm_bootdefs::layout::*;
use svsm_bootdefs::{BOOT_INFO_MAGIC, BOOT_INFO_VERSION, BootInfo, PlatformKind};
use svsm_defs::cr::{Cr0, Cr4, Efer, RFlags};
use svsm_defs::desc::{BOOT_GDT, KERNEL_CS, KERNEL_DS, SegmentDescriptor};
use svsm_defs::paging::PageEncryption;
use zerocopy::{FromZeros, IntoBytes};

/// Compatibility mask of the native platform in the files we write.
pub const NATIVE_COMPAT_MASK: u32 = 1;
/// Page-table pool at the start of the kernel region.
pub const PAGE_TABLE_POOL_PAGES: usize = 64;
/// The GDT the VP context loads lives in the boot-info page at this offset.
pub const GDT_OFFSET_IN_BOOT_INFO_PAGE: u64 = 0x800;
/// The one parameter area: the memory map the loader fills.
pub const PARAM_AREA_MEMORY_MAP: u32 = 0;

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    /// The stage2 ELF (linked at the stage2 base).
    #[arg(long)]
    pub stage2: PathBuf,
    /// The kernel ELF (higher half).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The IGVM file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The command line baked into the SVSM configuration page (measured
    /// page data), e.g. `test=<name>`; `igvm-build configure` rewrites it.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// A guest ELF (linked in the guest image range of
    /// `svsm_bootdefs::guest`) that the SVSM hosts with AMD-V on the
    /// native platform: packaged with its page tables and boot VMSA (into
    /// the native part of the file only).
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Sign an SNP ID block (the file's SNP launch digest and guest policy)
    /// with this ECDSA P-384 private key: 96 hex digits (`openssl ec -text`
    /// `priv:` form accepted). See docs/snp.md.
    #[arg(long)]
    pub id_key: Option<PathBuf>,
    #[command(flatten)]
    pub channel: crate::channel::ChannelArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct InfoArgs {
    /// The stage2 ELF.
    #[arg(long)]
    pub stage2: PathBuf,
    /// The kernel ELF.
    #[arg(long)]
    pub kernel: PathBuf,
    /// Fail (exit 1) when stage2's flat image exceeds its limit (STAGE2_MAX_SIZE).
    #[arg(long)]
    pub check: bool,
}

/// Where everything goes, decided from the two ELFs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub page_table_start: u64,
    pub kernel_image_phys: u64,
    pub kernel_image_virt: u64,
    pub kernel_image_size: u64,
    pub symtab_phys: u64,
    pub symtab_virt: u64,
    pub symtab_size: u64,
    pub boot_stack_phys: u64,
    pub free_phys_start: u64,
}

pub fn plan(kernel: &ElfImage, symtab_len: u64) -> Result<Layout> {
    let (lo, hi) = kernel.span();
    if lo < KERNEL_VIRT_BASE {
        bail!("kernel segment at {lo:#x} is below the kernel base {KERNEL_VIRT_BASE:#x}");
    }
    let page_table_start = KERNEL_REGION_START;
    let kernel_image_phys = page_table_start + PAGE_TABLE_POOL_PAGES as u64 * PAGE_SIZE;
    let kernel_image_size = align_up(hi - lo, PAGE_SIZE);
    let symtab_phys = kernel_image_phys + kernel_image_size;
    let symtab_size = align_up(symtab_len, PAGE_SIZE);
    // One unmapped page separates the image from the symbol table.
    let symtab_virt = (lo + kernel_image_size)
        .checked_add(PAGE_SIZE)
        .filter(|v| v.checked_add(symtab_size).is_some())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "kernel image ends too close to the top of the address space for its symbol table"
            )
        })?;
    let boot_stack_phys = symtab_phys + symtab_size;
    let free_phys_start = boot_stack_phys + svsm_guards::BOOT_STACK_SIZE;
    if free_phys_start + (4 << 20) > KERNEL_REGION_END {
        bail!("kernel image too large: it leaves less than 4 MiB of the kernel region free");
    }
    Ok(Layout {
        page_table_start,
        kernel_image_phys,
        kernel_image_virt: lo,
        kernel_image_size,
        symtab_phys,
        symtab_virt,
        symtab_size,
        boot_stack_phys,
        free_phys_start,
    })
}

fn access(p: elf::Perms) -> Access {
    match (p.write, p.exec) {
        (true, _) => Access::ReadWrite,
        (false, true) => Access::ReadExecute,
        (false, false) => Access::ReadOnly,
    }
}

/// Guest memory contents, page by page.
#[derive(Default, Debug)]
pub struct Pages(pub BTreeMap<u64, Vec<u8>>);

impl Pages {
    /// Copies `data` (then zeros up to `len`) to guest-physical `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8], len: u64) {
        let len = len.max(data.len() as u64);
        let mut off = 0u64;
        while off < len {
            let addr = gpa + off;
            let page = align_down(addr, PAGE_SIZE);
            let in_page = (addr - page) as usize;
            let n = ((PAGE_SIZE - (addr - page)).min(len - off)) as usize;
            let buf = self
                .0
                .entry(page)
                .or_insert_with(|| vec![0u8; PAGE_SIZE as usize]);
            for i in 0..n {
                let src = off as usize + i;
                buf[in_page + i] = data.get(src).copied().unwrap_or(0);
            }
            off += n as u64;
        }
    }
}

/// Maps the ELF's segments and writes their bytes at `phys_base + (vaddr - first vaddr)`.
fn place_segments(
    img: &ElfImage,
    phys_base: u64,
    pt: &mut PageTableBuilder,
    pages: &mut Pages,
) -> Result<()> {
    let (lo, _) = img.span();
    for s in &img.segments {
        let pa = phys_base + (s.vaddr - lo);
        pages.write(pa, &s.data, align_up(s.memsz, PAGE_SIZE));
        let mut off = 0;
        while off < align_up(s.memsz, PAGE_SIZE) {
            pt.map_4k(s.vaddr + off, pa + off, access(s.perms))?;
            off += PAGE_SIZE;
        }
    }
    Ok(())
}

/// Everything that goes into the IGVM file, before serialization.
#[derive(Debug)]
pub struct Image {
    pub layout: Layout,
    pub pages: Pages,
    pub vp_context: IgvmNativeVpContextX64,
    pub boot_info: BootInfo,
    pub stage2_flat_size: u64,
}

pub fn symbol_table(kernel: &ElfImage) -> Vec<u8> {
    let names: Vec<(u64, u64, String)> = kernel
        .functions
        .iter()
        .map(|f| {
            (
                f.addr,
                f.size,
                format!("{:#}", rustc_demangle::demangle(&f.name)),
            )
        })
        .collect();
    let refs: Vec<(u64, u64, &str)> = names.iter().map(|(a, s, n)| (*a, *s, n.as_str())).collect();
    svsm_bootdefs::symtab::encode(&refs)
}

/// The native platform's image (see `assemble_for`).
pub fn assemble(stage2: &ElfImage, kernel: &ElfImage, cmdline: &str) -> Result<Image> {
    assemble_for(stage2, kernel, cmdline, PlatformKind::Native)
}

/// Lays out stage2 and the kernel for `platform`. The platforms share the
/// layout; they differ in the page tables (SNP: every entry carries the
/// C-bit) and in the boot info's platform field.
pub fn assemble_for(
    stage2: &ElfImage,
    kernel: &ElfImage,
    cmdline: &str,
    platform: PlatformKind,
) -> Result<Image> {
    let (s2_lo, s2_hi) = stage2.span();
    if s2_lo != STAGE2_BASE {
        bail!("stage2 must be linked at {STAGE2_BASE:#x}, its first segment is at {s2_lo:#x}");
    }
    let stage2_flat_size = s2_hi - s2_lo;
    if stage2_flat_size > STAGE2_MAX_SIZE {
        bail!(
            "stage2 flat image is {stage2_flat_size} bytes, over its {STAGE2_MAX_SIZE}-byte limit"
        );
    }
    if stage2.segments.iter().any(|s| s.perms.write) {
        bail!("stage2 must not have writable segments");
    }
    let symtab = symbol_table(kernel);
    let symtab_len = symtab.len() as u64;
    let (unwind, _) = crate::unwind::kernel_table(kernel)?;
    let (symtab, unwind_off) = crate::unwind::append_to_symtab(symtab, &unwind);
    let layout = plan(kernel, symtab.len() as u64)?;
    let mut pages = Pages::default();
    let enc = match platform {
        PlatformKind::Native => PageEncryption::NONE,
        PlatformKind::Snp => PageEncryption::snp(SNP_C_BIT)
            .map_err(|e| anyhow::anyhow!("internal error: SNP C-bit: {e}"))?,
        PlatformKind::Tdx => bail!("the TDX platform is not packaged by this igvm-build"),
    };
    let mut pt =
        PageTableBuilder::with_encryption(layout.page_table_start, PAGE_TABLE_POOL_PAGES, enc);

    // Identity map of the first 2 MiB, page by page: page 0 and the stage2
    // stack guards stay unmapped.
    pt.map_4k(BOOT_INFO_GPA, BOOT_INFO_GPA, Access::ReadOnly)?;
    pt.map_4k(CONFIG_PAGE_GPA, CONFIG_PAGE_GPA, Access::ReadOnly)?;
    pt.map_4k(MEMORY_MAP_GPA, MEMORY_MAP_GPA, Access::ReadOnly)?;
    pt.map_range(
        STAGE2_STACK_BOTTOM,
        STAGE2_STACK_BOTTOM,
        STAGE2_STACK_SIZE,
        Access::ReadWrite,
    )?;
    place_segments(stage2, STAGE2_BASE, &mut pt, &mut pages)?;
    // Identity map of 2 MiB .. 4 GiB (large pages, NX) with the reset-ROM
    // window executable for the VP-context hand-off.
    let mut va = LARGE_PAGE_SIZE;
    while va < IDENTITY_MAP_SIZE {
        let acc = if (ROM_WINDOW_START..ROM_WINDOW_END).contains(&va) {
            Access::ReadExecute
        } else {
            Access::ReadWrite
        };
        pt.map_2m(va, va, acc)?;
        va += LARGE_PAGE_SIZE;
    }
    // Direct map of guest-physical 0 .. 4 GiB.
    pt.map_range(DIRECT_MAP_BASE, 0, DIRECT_MAP_SIZE, Access::ReadWrite)?;
    // Kernel image, symbol table, boot stack.
    place_segments(kernel, layout.kernel_image_phys, &mut pt, &mut pages)?;
    pages.write(layout.symtab_phys, &symtab, layout.symtab_size);
    pt.map_range(
        layout.symtab_virt,
        layout.symtab_phys,
        layout.symtab_size,
        Access::ReadOnly,
    )?;
    pt.map_range(
        svsm_guards::BOOT_STACK_BOTTOM,
        layout.boot_stack_phys,
        svsm_guards::BOOT_STACK_SIZE,
        Access::ReadWrite,
    )?;
    // Paint the stacks that exist before the kernel runs, so the kernel can
    // report their high-water marks.
    let paint: Vec<u8> = svsm_guards::PAINT_PATTERN
        .to_le_bytes()
        .repeat((svsm_guards::BOOT_STACK_SIZE / 8) as usize);
    pages.write(layout.boot_stack_phys, &paint, svsm_guards::BOOT_STACK_SIZE);
    pages.write(
        STAGE2_STACK_BOTTOM,
        &paint[..STAGE2_STACK_SIZE as usize],
        STAGE2_STACK_SIZE,
    );
    if platform == PlatformKind::Snp {
        // The GHCB page: shared with the hypervisor, outside the launch.
        pt.map_4k_shared(SNP_GHCB_VIRT, SNP_GHCB_GPA, Access::ReadWrite)?;
    }
    if pt.end() > layout.kernel_image_phys {
        bail!("page tables overflow their pool");
    }

    let mut bi = BootInfo::new_zeroed();
    bi.magic = BOOT_INFO_MAGIC;
    bi.version = BOOT_INFO_VERSION;
    bi.platform = platform as u32;
    bi.kernel_region_start = KERNEL_REGION_START;
    bi.kernel_region_end = KERNEL_REGION_END;
    bi.kernel_image_phys = layout.kernel_image_phys;
    bi.kernel_image_virt = layout.kernel_image_virt;
    bi.kernel_image_size = layout.kernel_image_size;
    bi.kernel_entry = kernel.entry;
    bi.page_table_root = pt.root();
    bi.page_table_start = layout.page_table_start;
    bi.page_table_end = pt.end();
    bi.free_phys_start = layout.free_phys_start;
    bi.direct_map_base = DIRECT_MAP_BASE;
    bi.direct_map_size = DIRECT_MAP_SIZE;
    bi.boot_stack_bottom = svsm_guards::BOOT_STACK_BOTTOM;
    bi.boot_stack_top = svsm_guards::BOOT_STACK_TOP;
    bi.stage2_stack_bottom = STAGE2_STACK_BOTTOM;
    bi.stage2_stack_top = STAGE2_STACK_TOP;
    bi.cmdline_gpa = CONFIG_PAGE_GPA + u64::from(config::CMDLINE_OFFSET);
    bi.cmdline_size = u64::from(config::CMDLINE_CAPACITY);
    bi.memory_map_gpa = MEMORY_MAP_GPA;
    bi.memory_map_size = MEMORY_MAP_SIZE;
    bi.symtab_virt = layout.symtab_virt;
    bi.symtab_size = symtab_len;
    if !unwind.is_empty() {
        bi.unwind_virt = layout.symtab_virt + unwind_off;
        bi.unwind_size = unwind.len() as u64;
    }
    if let Some(id) = &kernel.build_id {
        let n = id.len().min(bi.build_id.len());
        bi.build_id[..n].copy_from_slice(&id[..n]);
        bi.build_id_len = n as u32;
    }
    bi.validate()
        .map_err(|e| anyhow::anyhow!("internal error: boot info invalid: {e}"))?;

    let bi_bytes = bi.as_bytes();
    assert!((bi_bytes.len() as u64) <= GDT_OFFSET_IN_BOOT_INFO_PAGE);
    let gdt: Vec<u8> = BOOT_GDT
        .iter()
        .flat_map(|d| d.bits().to_le_bytes())
        .collect();
    pages.write(BOOT_INFO_GPA, bi_bytes, PAGE_SIZE);
    pages.write(
        BOOT_INFO_GPA + GDT_OFFSET_IN_BOOT_INFO_PAGE,
        &gdt,
        gdt.len() as u64,
    );
    for (gpa, bytes) in pt.pages() {
        pages.write(gpa, &bytes, PAGE_SIZE);
    }
    let config_page = config::encode(cmdline).map_err(|e| anyhow::anyhow!("--cmdline: {e}"))?;
    pages.write(CONFIG_PAGE_GPA, &config_page, PAGE_SIZE);

    let mut ctx = IgvmNativeVpContextX64::new_zeroed();
    ctx.rip = stage2.entry;
    ctx.rsp = STAGE2_STACK_TOP;
    ctx.rdi = BOOT_INFO_GPA;
    ctx.rflags = RFlags::RESERVED_1.bits();
    ctx.gdtr_base = BOOT_INFO_GPA + GDT_OFFSET_IN_BOOT_INFO_PAGE;
    ctx.gdtr_limit = (gdt.len() - 1) as u16;
    ctx.code_selector = KERNEL_CS;
    ctx.code_attributes = SegmentDescriptor::CODE64.vp_context_attributes();
    ctx.code_limit = 0xffff_ffff;
    ctx.data_selector = KERNEL_DS;
    ctx.data_attributes = SegmentDescriptor::DATA.vp_context_attributes();
    ctx.data_limit = 0xffff_ffff;
    ctx.cr0 = (Cr0::PG | Cr0::WP | Cr0::NE | Cr0::ET | Cr0::MP | Cr0::PE).bits();
    ctx.cr3 = pt.root();
    ctx.cr4 = (Cr4::OSXMMEXCPT | Cr4::OSFXSR | Cr4::PAE).bits();
    ctx.efer = (Efer::NXE | Efer::LMA | Efer::LME).bits();
    Ok(Image {
        layout,
        pages,
        vp_context: ctx,
        boot_info: bi,
        stage2_flat_size,
    })
}

/// The memory-map parameter area the loader fills, and its insertion at
/// `MEMORY_MAP_GPA` for the platforms in `compatibility_mask`.
pub(crate) fn memory_map_directives(d: &mut Vec<IgvmDirectiveHeader>, compatibility_mask: u32) {
    d.push(IgvmDirectiveHeader::ParameterArea {
        number_of_bytes: MEMORY_MAP_SIZE,
        parameter_area_index: PARAM_AREA_MEMORY_MAP,
        initial_data: vec![],
    });
    d.push(IgvmDirectiveHeader::MemoryMap(IGVM_VHS_PARAMETER {
        parameter_area_index: PARAM_AREA_MEMORY_MAP,
        byte_offset: 0,
    }));
    d.push(IgvmDirectiveHeader::ParameterInsert(
        IGVM_VHS_PARAMETER_INSERT {
            gpa: MEMORY_MAP_GPA,
            compatibility_mask,
            parameter_area_index: PARAM_AREA_MEMORY_MAP,
        },
    ));
}

/// An IGVM file for the native platform alone (`crate::snp::to_igvm`
/// writes the file for both platforms).
pub fn to_igvm(img: &Image) -> Result<IgvmFile> {
    let platform = IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: NATIVE_COMPAT_MASK,
        highest_vtl: 0,
        platform_type: IgvmPlatformType::NATIVE,
        platform_version: 1,
        shared_gpa_boundary: 0,
    });
    let mut d = Vec::new();
    for (gpa, data) in &img.pages.0 {
        d.push(IgvmDirectiveHeader::PageData {
            gpa: *gpa,
            compatibility_mask: NATIVE_COMPAT_MASK,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: data.clone(),
        });
    }
    // Only directives both loaders handle: the command line travels in the
    // configuration page above, not in a COMMAND_LINE parameter (upstream
    // QEMU refuses the whole file for one). See docs/qemu-adapter.md.
    memory_map_directives(&mut d, NATIVE_COMPAT_MASK);
    d.push(IgvmDirectiveHeader::X64NativeVpContext {
        compatibility_mask: NATIVE_COMPAT_MASK,
        vp_index: 0,
        context: Box::new(img.vp_context),
    });
    IgvmFile::new(IgvmRevision::V1, vec![platform], vec![], d)
        .map_err(|e| anyhow::anyhow!("igvm: {e}"))
}

pub fn build(a: &BuildArgs) -> Result<u8> {
    let stage2 = elf::load(&a.stage2, "stage2")?;
    let kernel = elf::load(&a.kernel, "kernel")?;
    let mut img = assemble(&stage2, &kernel, &a.cmdline)?;
    let mut snp = assemble_for(&stage2, &kernel, &a.cmdline, PlatformKind::Snp)?;
    let channel = a
        .channel
        .resolve(&svsm_bootdefs::channel::ChannelConfig::default())?;
    if let Some(g) = &a.guest {
        let guest = elf::load(g, "guest")?;
        crate::guest::package(&mut img.pages, &guest, channel.guest_vmpl())
            .with_context(|| format!("guest ELF {}", g.display()))?;
    }
    // The configuration page is the same on both platforms (one directive).
    for image in [&mut img, &mut snp] {
        let page = image
            .pages
            .0
            .get_mut(&CONFIG_PAGE_GPA)
            .ok_or_else(|| anyhow::anyhow!("internal error: no configuration page"))?;
        config::write_channel(page, &channel).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let file = crate::snp::to_igvm(&img, &snp)?;
    let mut out = Vec::new();
    file.serialize(&mut out)
        .map_err(|e| anyhow::anyhow!("igvm serialize: {e}"))?;
    if let Some(key) = &a.id_key {
        let key = crate::idblock::read_key(key)?;
        out = crate::snp::with_id_block(&out, &key)?;
    }
    std::fs::write(&a.output, &out)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    println!(
        "igvm-build: wrote {} ({} bytes; native and SEV-SNP): stage2 {} bytes flat, kernel image {} bytes at {:#x}, {} pages",
        a.output.display(),
        out.len(),
        img.stage2_flat_size,
        img.layout.kernel_image_size,
        img.layout.kernel_image_phys,
        img.pages.0.len()
    );
    Ok(0)
}

pub fn info(a: &InfoArgs) -> Result<u8> {
    let stage2 = elf::load(&a.stage2, "stage2")?;
    let kernel = elf::load(&a.kernel, "kernel")?;
    let kernel_file = std::fs::metadata(&a.kernel)?.len();
    let s2 = stage2.flat_size();
    println!("stage2 flat size: {s2} bytes (limit {STAGE2_MAX_SIZE})");
    println!(
        "kernel ELF size: {kernel_file} bytes, loaded image {} bytes",
        align_up(kernel.flat_size(), PAGE_SIZE)
    );
    if a.check && s2 > STAGE2_MAX_SIZE {
        println!("stage2 is over its size limit");
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::elf::{FuncSymbol, Perms, Segment};
    use crate::paging::{NO_EXECUTE, WRITABLE};

    const RX: Perms = Perms {
        read: true,
        write: false,
        exec: true,
    };
    const R: Perms = Perms {
        read: true,
        write: false,
        exec: false,
    };
    const RW: Perms = Perms {
        read: true,
        write: true,
        exec: false,
    };

    fn seg(vaddr: u64, len: u64, perms: Perms) -> Segment {
        Segment {
            vaddr,
            memsz: len,
            data: vec![0xcc; (len / 2) as usize],
            perms,
        }
    }

    pub(crate) fn stage2() -> ElfImage {
        ElfImage {
            entry: STAGE2_BASE,
            segments: vec![
                seg(STAGE2_BASE, 0x800, RX),
                seg(STAGE2_BASE + 0x1000, 0x100, R),
            ],
            functions: vec![],
            build_id: None,
            cfi: None,
        }
    }

    pub(crate) fn kernel() -> ElfImage {
        ElfImage {
            entry: KERNEL_VIRT_BASE,
            segments: vec![
                seg(KERNEL_VIRT_BASE, 0x3000, RX),
                seg(KERNEL_VIRT_BASE + 0x3000, 0x1000, R),
                seg(KERNEL_VIRT_BASE + 0x4000, 0x2800, RW),
            ],
            functions: vec![FuncSymbol {
                addr: KERNEL_VIRT_BASE,
                size: 16,
                name: "_ZN4core3fmt5write17h0123456789abcdefE".into(),
            }],
            build_id: Some(vec![0xab; 20]),
            cfi: None,
        }
    }

    fn translate(img: &Image, va: u64) -> Option<(u64, u64)> {
        // Walk the page tables from the guest memory image itself.
        svsm_defs::paging::translate(
            img.boot_info.page_table_root,
            va,
            svsm_defs::paging::PageEncryption::NONE,
            |table, i| {
                let page = img.pages.0.get(&table)?;
                Some(u64::from_le_bytes(
                    page[i * 8..i * 8 + 8].try_into().unwrap(),
                ))
            },
        )
        .map(|(pa, flags)| (pa, flags.bits()))
    }

    #[test]
    fn plan_orders_regions() {
        let l = plan(&kernel(), 5000).unwrap();
        assert_eq!(l.page_table_start, KERNEL_REGION_START);
        assert_eq!(
            l.kernel_image_phys,
            KERNEL_REGION_START + PAGE_TABLE_POOL_PAGES as u64 * PAGE_SIZE
        );
        assert_eq!(l.kernel_image_size, 0x7000);
        assert_eq!(l.symtab_phys, l.kernel_image_phys + 0x7000);
        assert_eq!(l.symtab_size, 0x2000);
        assert_eq!(l.symtab_virt, KERNEL_VIRT_BASE + 0x8000);
        assert_eq!(l.boot_stack_phys, l.symtab_phys + 0x2000);
        assert_eq!(
            l.free_phys_start,
            l.boot_stack_phys + svsm_guards::BOOT_STACK_SIZE
        );
    }

    #[test]
    fn plan_rejects_bad_kernels() {
        let mut low = kernel();
        low.segments[0].vaddr = 0x40_0000;
        assert!(
            plan(&low, 0)
                .unwrap_err()
                .to_string()
                .contains("below the kernel base")
        );
        let mut huge = kernel();
        huge.segments[2].memsz = KERNEL_REGION_END - KERNEL_REGION_START;
        assert!(
            plan(&huge, 0)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn assembled_image_has_the_documented_mappings() {
        let img = assemble(&stage2(), &kernel(), "").unwrap();
        let bi = &img.boot_info;
        bi.validate().unwrap();
        assert_eq!(bi.build_id(), &[0xab; 20]);
        // Kernel permissions: text RX, rodata R+NX, data RW+NX, backed by the image.
        let (pa, f) = translate(&img, KERNEL_VIRT_BASE + 0x10).unwrap();
        assert_eq!(pa, img.layout.kernel_image_phys + 0x10);
        assert!(f & WRITABLE == 0 && f & NO_EXECUTE == 0);
        let (_, f) = translate(&img, KERNEL_VIRT_BASE + 0x3000).unwrap();
        assert!(f & WRITABLE == 0 && f & NO_EXECUTE != 0);
        let (_, f) = translate(&img, KERNEL_VIRT_BASE + 0x6000).unwrap();
        assert!(f & WRITABLE != 0 && f & NO_EXECUTE != 0);
        assert!(
            translate(&img, KERNEL_VIRT_BASE + 0x7000).is_none(),
            "gap before the symbol table"
        );
        assert!(translate(&img, img.layout.symtab_virt).unwrap().1 & WRITABLE == 0);
        // Boot stack mapped RW+NX, its guards not.
        let (_, f) = translate(&img, svsm_guards::BOOT_STACK_BOTTOM).unwrap();
        assert!(f & WRITABLE != 0 && f & NO_EXECUTE != 0);
        assert!(translate(&img, svsm_guards::BOOT_STACK_BOTTOM - 1).is_none());
        assert!(translate(&img, svsm_guards::BOOT_STACK_TOP).is_none());
        // stage2: stack with unmapped guards, page 0 unmapped, code executable.
        assert!(translate(&img, STAGE2_STACK_BOTTOM).is_some());
        assert!(translate(&img, STAGE2_STACK_BOTTOM - 1).is_none());
        assert!(translate(&img, STAGE2_STACK_TOP).is_none());
        assert!(translate(&img, 0).is_none());
        assert_eq!(translate(&img, STAGE2_BASE).unwrap().1 & NO_EXECUTE, 0);
        assert_ne!(translate(&img, BOOT_INFO_GPA).unwrap().1 & NO_EXECUTE, 0);
        // The reset ROM window is identity mapped and executable; the rest NX.
        let (pa, f) = translate(&img, 0xffff_fff0).unwrap();
        assert_eq!(pa, 0xffff_fff0);
        assert_eq!(f & NO_EXECUTE, 0);
        assert_ne!(translate(&img, 0x4000_0000).unwrap().1 & NO_EXECUTE, 0);
        // Direct map.
        assert_eq!(
            translate(&img, DIRECT_MAP_BASE + 0x1234_5678).unwrap().0,
            0x1234_5678
        );
        // Boot stack painted, symbol table demangled.
        let page = &img.pages.0[&img.layout.boot_stack_phys];
        assert_eq!(
            u64::from_le_bytes(page[..8].try_into().unwrap()),
            svsm_guards::PAINT_PATTERN
        );
        let st = &img.pages.0[&img.layout.symtab_phys];
        let tab = svsm_bootdefs::symtab::SymTab::parse(&st[..bi.symtab_size as usize]).unwrap();
        assert_eq!(
            tab.lookup(KERNEL_VIRT_BASE + 4),
            Some(("core::fmt::write", 4))
        );
        // VP context.
        assert_eq!(img.vp_context.rip, STAGE2_BASE);
        assert_eq!(img.vp_context.rsp, STAGE2_STACK_TOP);
        assert_eq!(img.vp_context.cr3, bi.page_table_root);
        // And it serializes into a valid IGVM file that parses back.
        let mut out = Vec::new();
        to_igvm(&img).unwrap().serialize(&mut out).unwrap();
        let back = IgvmFile::new_from_binary(&out, None).unwrap();
        assert_eq!(back.platforms().len(), 1);
    }

    /// Every directive of the file is one upstream QEMU's loader handles, and
    /// the command line lives in the configuration page, rewritable in a copy.
    #[test]
    fn file_suits_upstream_qemu_and_carries_the_command_line() {
        let img = assemble(&stage2(), &kernel(), "test=smoke").unwrap();
        let mut bytes = Vec::new();
        to_igvm(&img).unwrap().serialize(&mut bytes).unwrap();
        assert_eq!(
            crate::qemu::loaders::upstream_refusals(&bytes).unwrap(),
            Vec::<String>::new()
        );
        let pages = crate::configpage::config_pages(&bytes).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (
                pages[0].gpa,
                pages[0].compatibility_mask,
                pages[0].cmdline.as_str()
            ),
            (CONFIG_PAGE_GPA, NATIVE_COMPAT_MASK, "test=smoke")
        );
        // BootInfo points the kernel at the command-line field of that page.
        let bi = &img.boot_info;
        let page = &img.pages.0[&CONFIG_PAGE_GPA];
        let off = (bi.cmdline_gpa - CONFIG_PAGE_GPA) as usize;
        assert_eq!(&page[off..off + 11], b"test=smoke\0");
        assert_eq!(bi.cmdline_size, u64::from(config::CMDLINE_CAPACITY));
        // A copy with another command line differs only in that page's bytes.
        let copy = crate::configpage::with_cmdline(&bytes, "test=heap")
            .unwrap()
            .unwrap();
        assert_eq!(copy.len(), bytes.len());
        let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != copy[i]).collect();
        assert!(
            !differing.is_empty() && differing.len() <= 10,
            "{differing:?}"
        );
        assert_eq!(
            crate::configpage::config_pages(&copy).unwrap()[0].cmdline,
            "test=heap"
        );
        let e = crate::configpage::with_cmdline(&bytes, &"x".repeat(300)).unwrap_err();
        assert!(
            format!("{e:#}").contains("command line needs 301 bytes"),
            "{e:#}"
        );
        let e = assemble(&stage2(), &kernel(), "a\0b").unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn stage2_constraints_are_enforced() {
        let mut big = stage2();
        big.segments[1].memsz = STAGE2_MAX_SIZE;
        assert!(
            assemble(&big, &kernel(), "")
                .unwrap_err()
                .to_string()
                .contains("over its")
        );
        let mut w = stage2();
        w.segments[1].perms = RW;
        assert!(
            assemble(&w, &kernel(), "")
                .unwrap_err()
                .to_string()
                .contains("writable")
        );
        let mut moved = stage2();
        moved.segments[0].vaddr += 0x1000;
        moved.segments[1].vaddr += 0x1000;
        assert!(
            assemble(&moved, &kernel(), "")
                .unwrap_err()
                .to_string()
                .contains("must be linked at")
        );
    }

    /// The kernel writes the AP start-up trampoline into this page at run
    /// time: the file loads nothing there, and the `pc` machine's memory
    /// map (what both loaders report) has it as RAM.
    #[test]
    fn ap_trampoline_page_is_left_free_ram() {
        use svsm_bootdefs::layout::{AP_TRAMPOLINE_GPA, DEFAULT_GUEST_RAM, PAGE_SIZE};
        let img = assemble(&stage2(), &kernel(), "").unwrap();
        assert!(
            img.pages
                .0
                .keys()
                .all(|&gpa| gpa + PAGE_SIZE <= AP_TRAMPOLINE_GPA
                    || gpa >= AP_TRAMPOLINE_GPA + PAGE_SIZE),
            "page data on the AP trampoline page"
        );
        assert!(
            crate::qemu::plan::pc_ram_ranges(DEFAULT_GUEST_RAM)
                .iter()
                .any(|&(start, len)| start <= AP_TRAMPOLINE_GPA
                    && AP_TRAMPOLINE_GPA + PAGE_SIZE <= start + len)
        );
    }
}
