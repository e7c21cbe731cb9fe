//! `woolly synth`: skeletons of models (metadata and tensor infos, no data) and random-weight
//! models filled from them. The work is woolly-core's (`gguf::synth`); this parses and reports.

use std::path::PathBuf;

use woolly_core::gguf::synth::{read_skeleton, synth_fill, synth_skeleton};
use woolly_core::gguf::GgufFile;

use crate::CliResult;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["like", "fill"])))]
pub(crate) struct SynthArgs {
    /// Write the skeleton of MODEL: all its metadata and tensor infos, no tensor data.
    #[arg(long, value_name = "MODEL")]
    like: Option<PathBuf>,
    /// Fill SKELETON with random, deterministic weights and write the full model.
    #[arg(long, value_name = "SKELETON")]
    fill: Option<PathBuf>,
    /// Where to write the skeleton or model.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The seed of the random weights (--fill only; the same seed gives the same bytes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(a: SynthArgs) -> CliResult {
    if let Some(like) = &a.like {
        if read_skeleton(like).is_ok() {
            return Err(woolly_core::Error::InvalidArgument(format!(
                "{} is a skeleton; --like needs a full model",
                like.display()
            ))
            .into());
        }
        let src = GgufFile::open(like)?;
        synth_skeleton(&src, &a.out)?;
    } else if let Some(fill) = &a.fill {
        synth_fill(fill, &a.out, a.seed)?;
    }
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({:.2} MiB)",
        a.out.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
