//! Embeds the CUDA kernels' PTX (`kernels/woolly.ptx`, from `make kernels`) when the tree has
//! it: the `woolly_ptx` cfg says so, and `backend::cuda` reads the file through `WOOLLY_PTX`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(woolly_ptx)");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let ptx = std::path::Path::new(&dir).join("../kernels/woolly.ptx");
    println!("cargo::rerun-if-changed={}", ptx.display());
    if ptx.is_file() {
        println!("cargo::rustc-cfg=woolly_ptx");
        println!("cargo::rustc-env=WOOLLY_PTX={}", ptx.display());
    }
}
