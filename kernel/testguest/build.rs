fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/testguest.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/testguest.ld");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
}
