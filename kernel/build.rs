fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/kernel.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/kernel.ld");
    // .eh_frame_hdr is the unwinder's binary-search table; the build id ties
    // serial logs to the exact ELF for host symbolization.
    println!("cargo:rustc-link-arg-bins=--eh-frame-hdr");
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
}
