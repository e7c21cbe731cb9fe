//! Finding the model file: an explicit path, then `WOOLLY_MODEL`, then the cache.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The default model's file name inside the cache directory.
pub const DEFAULT_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// The environment variable that names a model file when no path is given.
pub const MODEL_ENV: &str = "WOOLLY_MODEL";

/// Where `make model` installs the default model:
/// `${XDG_CACHE_HOME:-~/.cache}/woolly/models/gemma-3-270m-q4_k_m.gguf`.
pub fn default_model_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("woolly").join("models").join(DEFAULT_MODEL_FILE))
}

/// `Ok(true)` when `p` is a regular file, `Ok(false)` when nothing is there, and an `Io` error
/// naming the path and what it is when something else is (a FIFO, a directory, a device):
/// opening such a thing for reading could block or fail obscurely.
fn check_candidate(p: &Path, what: &str) -> Result<bool> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(m) => Err(Error::Io {
            path: p.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{what} is {}, not a model file",
                    crate::platform::files::describe(&m.file_type())
                ),
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Io {
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// Resolves the model to load.
///
/// An explicit path is used as given (and must be a regular file). Without one, `WOOLLY_MODEL` is
/// used when set; otherwise the default model in the cache. What is there but not a regular file
/// (a FIFO, a directory, a device) is refused with an `Io` error saying what it is. When nothing
/// is found the error lists where Woolly looked (and which variables were unset) and says how to
/// install the default model.
pub fn resolve_model_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if check_candidate(p, "the model path")? {
            Ok(p.to_path_buf())
        } else {
            Err(Error::Io {
                path: p.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })
        };
    }
    let mut tried = Vec::new();
    if let Some(env) = std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(env);
        if check_candidate(&p, MODEL_ENV)? {
            return Ok(p);
        }
        // A variable naming a file that is not there is a mistake worth reporting as such.
        return Err(Error::Io {
            path: p,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{MODEL_ENV} names a file that does not exist"),
            ),
        });
    }
    tried.push(format!("{MODEL_ENV} (not set)"));
    match default_model_path() {
        Some(p) => {
            if check_candidate(&p, "the cached model")? {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
        None => tried.push(format!(
            "the cache ({}/woolly/models/{DEFAULT_MODEL_FILE}), but XDG_CACHE_HOME and HOME are both unset",
            "${XDG_CACHE_HOME:-$HOME/.cache}"
        )),
    }
    Err(Error::ModelNotFound { tried })
}
