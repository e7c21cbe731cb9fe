//! `woolly-header [OUT]`: writes the C header for woolly-ffi (default: include/woolly.h) using
//! woolly-ffi/cbindgen.toml. `make header` runs it; `make test` checks the checked-in header is
//! what it generates.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crate_dir = root.join("woolly-ffi");
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("include/woolly.h"));
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("woolly-header: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("woolly-header: {e}");
            ExitCode::FAILURE
        }
    }
}
