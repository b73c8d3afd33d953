fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/stage2.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/stage2.ld");
    println!("cargo:rustc-link-arg-bins=--eh-frame-hdr");
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
}
