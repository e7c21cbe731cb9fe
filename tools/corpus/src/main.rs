//! `woolly-corpus <dir>`: writes the synthetic model and every hostile file with a manifest.

use std::io::Write;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: woolly-corpus <dir>");
        std::process::exit(2)
    });
    if let Err(e) = woolly_corpus::write_corpus(std::path::Path::new(&dir)) {
        eprintln!("woolly-corpus: {dir}: {e}");
        std::process::exit(1);
    }
    let _ = writeln!(std::io::stdout(), "wrote {dir}");
}
