//! GGUF model files, read through a memory map.
//!
//! [`GgufFile::open`] maps the file read-only, parses its header with [`parse_header`] and keeps the
//! mapping: tensor data is never copied, and quantized weights stay quantized in the page cache.
//! Hostile files are ordinary input: every failure is a [`GgufError`] that names the key or tensor
//! at fault.

mod parse;
pub mod synth;
mod types;
mod value;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

pub use parse::{
    parse_header, Header, Metadata, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS,
};
pub use types::{GgmlType, QK_K};
pub use value::{Array, Value, ValueType};

use crate::{Error, Result};

/// What can be wrong with a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a GGUF file (the first bytes are {found:02x?}, expected \"GGUF\")")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {version}: {note}")]
    UnsupportedVersion { version: u32, note: &'static str },
    #[error("truncated file: {what} needs {needed} bytes at offset {offset}, but only {available} remain")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("metadata key `{key}` has unknown value type {type_id}")]
    InvalidValueType { key: String, type_id: u32 },
    #[error("metadata key `{key}` has an invalid value: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("metadata key `{0}` appears twice")]
    DuplicateKey(String),
    #[error("tensor `{0}` appears twice")]
    DuplicateTensor(String),
    #[error("invalid general.alignment {0}: it must be a power of two")]
    InvalidAlignment(String),
    #[error("tensor `{tensor}` has {n_dims} dimensions; at most 4 are allowed")]
    TooManyDims { tensor: String, n_dims: u32 },
    #[error("tensor `{tensor}` has unknown type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    #[error("tensor `{tensor}` has an invalid shape {dims:?}: {reason}")]
    InvalidTensorShape {
        tensor: String,
        dims: Vec<u64>,
        reason: String,
    },
    #[error("tensor `{tensor}` at offset {offset} is not aligned to {alignment} bytes")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor `{tensor}` ({size} bytes at data offset {offset}) lies outside the file's {data_len}-byte data section")]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size: u64,
        data_len: u64,
    },
    #[error("required metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("metadata key `{key}` should be {expected} but is {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("required tensor `{0}` is missing")]
    MissingTensor(String),
}

/// How the mapping will be read (`madvise`); a no-op where the platform has no such advice
/// (Windows: compiled behind `cfg`, untested here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    Normal,
    Random,
    Sequential,
    WillNeed,
}

/// `advice` over `map[offset..offset + len]` (the range rounded out to pages by the caller).
pub(crate) fn advise_map(map: &Mmap, advice: Advice, offset: usize, len: usize) {
    #[cfg(unix)]
    {
        let a = match advice {
            Advice::Normal => memmap2::Advice::Normal,
            Advice::Random => memmap2::Advice::Random,
            Advice::Sequential => memmap2::Advice::Sequential,
            Advice::WillNeed => memmap2::Advice::WillNeed,
        };
        let _ = map.advise_range(a, offset, len);
    }
    #[cfg(not(unix))]
    let _ = (map, advice, offset, len);
}

/// A GGUF file mapped into memory.
pub struct GgufFile {
    path: PathBuf,
    mmap: Arc<Mmap>,
    /// Page-aligned ranges given back with [`GgufFile::release_range`] (their contents live
    /// elsewhere now), sorted by start.
    released: std::sync::Mutex<Vec<(usize, usize)>>,
    header: Header,
    tensor_index: std::collections::HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("metadata", &self.header.metadata.len())
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` read-only and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        // Opening a FIFO for reading would block until a writer appears: what is not a regular
        // file is refused before it is opened.
        let file = crate::platform::files::open_regular(&path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        // SAFETY: the mapping is read-only. As with every mmap-based loader, a file truncated by
        // another process while mapped can fault on access; Woolly documents that model files must
        // not be modified while loaded.
        let mmap = if meta.len() == 0 {
            return Err(Error::Gguf {
                path,
                source: GgufError::Truncated {
                    what: "magic".into(),
                    offset: 0,
                    needed: 4,
                    available: 0,
                },
            });
        } else {
            unsafe { Mmap::map(&file) }.map_err(io_err)?
        };
        let header = parse_header(&mmap, mmap.len() as u64).map_err(|source| Error::Gguf {
            path: path.clone(),
            source,
        })?;
        let tensor_index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            mmap: Arc::new(mmap),
            released: Default::default(),
            header,
            tensor_index,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The alignment of tensor data.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Offset of the data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.mmap.len() as u64
    }

    /// The whole mapping (for memory advice and preloading).
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// The parts of the file still read through the mapping: everything but the ranges given
    /// back with [`GgufFile::release_range`], as sorted `(start, end)` byte ranges.
    pub fn mapped_ranges(&self) -> Vec<(usize, usize)> {
        let released = self.released.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut at = 0;
        for &(s, e) in released.iter() {
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < self.mmap.len() {
            out.push((at, self.mmap.len()));
        }
        out
    }

    /// The mapping, shared (a background preload keeps it alive while it runs).
    pub(crate) fn mapping(&self) -> Arc<Mmap> {
        self.mmap.clone()
    }

    /// Reads every page of the file still read through the mapping now (so that later use
    /// does not wait for the disk); ranges given back with [`GgufFile::release_range`] are
    /// skipped.
    pub fn prefault(&self) {
        for (s, e) in self.mapped_ranges() {
            advise_map(&self.mmap, Advice::WillNeed, s, e - s);
            touch_pages(&self.mmap, s, e, &|_| true);
        }
    }

    /// Tells the kernel how the mapping will be read: `Sequential` also widens read-ahead,
    /// `WillNeed` starts reading in the background.
    pub fn advise(&self, advice: Advice) {
        advise_map(&self.mmap, advice, 0, self.mmap.len());
    }

    /// [`GgufFile::advise`] for the bytes `offset..offset + len` only (rounded out to pages).
    pub fn advise_range(&self, advice: Advice, offset: usize, len: usize) {
        let page = crate::platform::memory::page_size() as usize;
        let start = offset / page * page;
        let end = offset.saturating_add(len).min(self.mmap.len());
        if end > start {
            advise_map(&self.mmap, advice, start, end - start);
        }
    }

    /// Pages of the mapping in memory (in this process or the page cache) and in all, from
    /// `mincore` (Linux); `None` where it is not available.
    pub fn residency(&self) -> Option<(usize, usize)> {
        residency(&self.mmap, 0, self.mmap.len())
    }

    /// Like [`GgufFile::residency`], for the bytes `offset..offset + len` of the file.
    pub fn residency_of(&self, offset: usize, len: usize) -> Option<(usize, usize)> {
        residency(&self.mmap, offset, len)
    }

    /// Asks the kernel to drop this file's clean pages from the page cache
    /// (`posix_fadvise(DONTNEED)`, this file only, never system-wide): a cold start for
    /// benchmarks and tests. Pages mapped by a process stay.
    pub fn evict_page_cache(path: &Path) -> std::io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            let f = crate::platform::files::open_regular(path)?;
            // SAFETY: the descriptor is open for the duration of the call.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = path;
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "evicting a file's pages is implemented on Linux only",
            ))
        }
    }

    /// Locks the mapping in memory (`mlock`), an explicit opt-in of the host application.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] with the system's reason (often `RLIMIT_MEMLOCK`) when the
    /// system refuses.
    pub fn lock_in_memory(&self) -> Result<()> {
        #[cfg(unix)]
        let locked = self.mmap.lock();
        // Windows (VirtualLock) is not wired up: compiled behind `cfg`, untested here.
        #[cfg(not(unix))]
        let locked: std::io::Result<()> = Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "mlock is implemented on Unix only",
        ));
        locked.map_err(|e| {
            Error::PermissionDenied(format!(
                "cannot lock {} MiB of {} in memory: {e} (raise the memlock limit, `ulimit -l`, or load without mlock)",
                self.mmap.len() >> 20,
                self.path.display()
            ))
        })
    }

    /// Tells the kernel that this process no longer needs the mapped pages wholly inside
    /// `offset..offset + len` resident (after their contents were copied elsewhere): they leave
    /// the process's resident set and are read again from the page cache or the file if touched.
    /// A hint: errors are ignored, and the bytes seen through [`GgufFile::bytes`] do not change.
    pub fn release_range(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        {
            const PAGE: usize = 4096;
            let end = offset.saturating_add(len).min(self.mmap.len());
            let start = offset.div_ceil(PAGE) * PAGE;
            let end = end / PAGE * PAGE;
            if end > start {
                {
                    let mut r = self.released.lock().unwrap_or_else(|e| e.into_inner());
                    let at = r.partition_point(|&(s, _)| s < start);
                    r.insert(at, (start, end));
                }
                // SAFETY: the mapping is private and read-only; dropping its pages makes later
                // reads fault them in again from the same file, with the same contents.
                let _ = unsafe {
                    self.mmap.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// All metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.header.tensors[i])
    }

    /// The tensor called `name`, or a [`GgufError::MissingTensor`] error.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| self.error(GgufError::MissingTensor(name.to_string())))
    }

    /// The bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.offset as usize..(info.offset + info.size) as usize]
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.metadata.get(key)
    }

    /// Wraps a [`GgufError`] with this file's path.
    pub fn error(&self, source: GgufError) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            source,
        }
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &'static str,
        conv: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| {
                self.error(GgufError::WrongType {
                    key: key.to_string(),
                    expected,
                    found: describe(v),
                })
            }),
        }
    }

    /// An optional integer key that must fit in u32 (any integer type in the file is accepted).
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        self.typed(key, "an unsigned 32-bit integer", |v| {
            v.as_u64().and_then(|x| u32::try_from(x).ok())
        })
    }

    /// An optional integer key that must fit in u64.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "an unsigned integer", Value::as_u64)
    }

    /// An optional integer key that must fit in i64.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// An optional float key (integers are accepted too).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        self.typed(key, "a number", |v| v.as_f64().map(|x| x as f32))
    }

    /// An optional boolean key.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// An optional string key.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.error(GgufError::WrongType {
                key: key.to_string(),
                expected: "a string",
                found: describe(v),
            })),
        }
    }

    /// An optional array key.
    pub fn get_array(&self, key: &str) -> Result<Option<&Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.error(GgufError::WrongType {
                key: key.to_string(),
                expected: "an array",
                found: describe(v),
            })),
        }
    }

    /// An optional array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get_array(key)? {
            None => Ok(None),
            Some(Array::String(v)) => Ok(Some(v)),
            Some(a) => Err(self.error(GgufError::WrongType {
                key: key.to_string(),
                expected: "an array of strings",
                found: format!("an array of {}", a.element_type().name()),
            })),
        }
    }

    /// A required key, converted by one of the `get_*` accessors.
    pub fn require<T>(&self, key: &str, got: Result<Option<T>>) -> Result<T> {
        got?.ok_or_else(|| self.error(GgufError::MissingKey(key.to_string())))
    }

    /// `general.architecture`, which every model file must have.
    pub fn architecture(&self) -> Result<&str> {
        self.require("general.architecture", self.get_str("general.architecture"))
    }
}

const PAGE: usize = 4096;

/// Reads one byte of every page of `map[from..to]`, calling `keep_going(bytes_done)` every
/// megabyte; stops early when it returns false.
pub(crate) fn touch_pages(map: &[u8], from: usize, to: usize, keep_going: &dyn Fn(usize) -> bool) {
    let to = to.min(map.len());
    let mut sum = 0u8;
    let mut at = from / PAGE * PAGE;
    while at < to {
        let end = (at + (1 << 20)).min(to);
        while at < end {
            sum = sum.wrapping_add(map[at]);
            at += PAGE;
        }
        if !keep_going(at.min(to) - from) {
            break;
        }
    }
    std::hint::black_box(sum);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn residency(map: &[u8], offset: usize, len: usize) -> Option<(usize, usize)> {
    let page = crate::platform::memory::page_size() as usize;
    let end = offset.saturating_add(len).min(map.len());
    let start = offset / page * page;
    if end <= start {
        return Some((0, 0));
    }
    let pages = (end - start).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `start` is page-aligned (the mapping itself is) and the range lies inside the
    // mapping; `vec` has one byte per page.
    let rc = unsafe {
        libc::mincore(
            map.as_ptr().add(start) as *mut libc::c_void,
            end - start,
            vec.as_mut_ptr(),
        )
    };
    (rc == 0).then(|| (vec.iter().filter(|&&b| b & 1 != 0).count(), pages))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn residency(_map: &[u8], _offset: usize, _len: usize) -> Option<(usize, usize)> {
    None
}

fn describe(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("an array of {}", a.element_type().name()),
        v => format!("{} {}", v.value_type().name(), v),
    }
}

#[cfg(test)]
mod tests;
