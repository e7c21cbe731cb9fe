//! When a model's pages are read from disk ([`Preload`]): the strategies' work during the
//! load, and the background read that some of them leave running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::HParams;
use crate::gguf::GgufFile;
use crate::Result;

/// When the model's pages are read from disk, and what the kernel is told about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preload {
    /// None: pages are read on first use (the fastest load; the first generation waits for
    /// the disk when the file is not in the page cache).
    #[default]
    Lazy,
    /// Sequential read-ahead: `MADV_SEQUENTIAL` over the mapping, and `MADV_WILLNEED` over
    /// it chunk by chunk from a background thread, so the kernel reads the file into the page
    /// cache while the load returns; `Model::preload_progress` reports how far it got.
    Sequential,
    /// The header and the first layers (a quarter of them, at least one) are read during the
    /// load; the rest on first use.
    Critical,
    /// Every page of the weights the model multiplies from the file (repacked ones live in
    /// their copies), read by a background thread after the load returns, and the embedding
    /// brought into the page cache; `Model::preload_progress` reports how far it got.
    Full,
    /// Every such page, read during the load (which reports it as progress).
    FullBlocking,
}

impl Preload {
    /// The name front ends use: `lazy`, `sequential`, `critical`, `full`, `full_blocking`.
    pub fn name(self) -> &'static str {
        match self {
            Preload::Lazy => "lazy",
            Preload::Sequential => "sequential",
            Preload::Critical => "critical",
            Preload::Full => "full",
            Preload::FullBlocking => "full_blocking",
        }
    }

    /// Every strategy.
    pub const ALL: [Preload; 5] = [
        Preload::Lazy,
        Preload::Sequential,
        Preload::Critical,
        Preload::Full,
        Preload::FullBlocking,
    ];

    /// The strategy called `name` (`none` is `lazy`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] naming the choices.
    pub fn from_name(name: &str) -> Result<Preload> {
        if name == "none" {
            return Ok(Preload::Lazy);
        }
        Preload::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "preload must be one of lazy, sequential, critical, full, full_blocking, not {name:?}"
                ))
            })
    }
}

/// How far a background preload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PreloadProgress {
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub finished: bool,
}

/// The background read of a model's pages, and how far it got.
#[derive(Default)]
pub(super) struct PreloadTask {
    pub(super) total: u64,
    pub(super) done: Arc<AtomicU64>,
    pub(super) finished: Arc<AtomicBool>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PreloadTask {
    /// Waits for the background thread, if one runs.
    pub(super) fn join(&self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// Reads `ranges` of the file on a background thread, in order: for a range marked
    /// `touch` it reads a byte of every page (the pages join the process), otherwise it asks
    /// the kernel to read
    /// ahead (`MADV_WILLNEED`, in chunks: the kernel reads at most its read-ahead window per
    /// call) so the pages wait in the page cache.
    fn spawn(&mut self, file: &GgufFile, ranges: Vec<(usize, usize, bool)>) -> Result<()> {
        const CHUNK: usize = 4 << 20;
        let map = file.mapping();
        self.total = ranges.iter().map(|(s, e, _)| (e - s) as u64).sum();
        let (done, finished, stop) = (self.done.clone(), self.finished.clone(), self.stop.clone());
        let t = std::thread::Builder::new()
            .name("woolly-preload".into())
            .spawn(move || {
                let mut n = 0;
                'ranges: for (start, end, touch) in ranges {
                    let mut at = start;
                    while at < end {
                        if stop.load(Ordering::Relaxed) {
                            break 'ranges;
                        }
                        let len = CHUNK.min(end - at);
                        crate::gguf::advise_map(&map, crate::gguf::Advice::WillNeed, at, len);
                        if touch {
                            crate::gguf::touch_pages(&map, at, at + len, &|_| true);
                        }
                        at += len;
                        n += len as u64;
                        done.store(n, Ordering::Relaxed);
                    }
                }
                finished.store(true, Ordering::Relaxed);
            })
            .map_err(|e| crate::Error::Internal(format!("cannot start the preload thread: {e}")))?;
        *self.thread.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(t);
        Ok(())
    }
}

impl PreloadTask {
    /// What `preload` does before the weights are read: `Sequential` starts its background
    /// read-ahead, `Critical` reads the header and the first layers now; the full strategies
    /// wait for [`PreloadTask::read_weights`].
    pub(super) fn start(file: &GgufFile, hp: &HParams, preload: Preload) -> Result<PreloadTask> {
        let mut task = PreloadTask {
            total: file.file_size(),
            ..Default::default()
        };
        match preload {
            Preload::Lazy => {}
            Preload::Sequential => {
                file.advise(crate::gguf::Advice::Sequential);
                let all = vec![(0, file.bytes().len(), false)];
                task.spawn(file, all)?;
            }
            Preload::Critical => {
                let n = hp.n_layer.div_ceil(4).max(1);
                let data = file.data_offset() as usize;
                let map = file.bytes();
                crate::gguf::touch_pages(map, 0, data, &|_| true);
                for t in file.tensors() {
                    let critical = t
                        .name
                        .strip_prefix("blk.")
                        .and_then(|r| r.split('.').next())
                        .and_then(|l| l.parse::<usize>().ok())
                        .is_some_and(|l| l < n)
                        || t.name == "output_norm.weight";
                    if critical {
                        let (off, len) = (t.offset as usize, t.size as usize);
                        file.advise_range(crate::gguf::Advice::WillNeed, off, len);
                        crate::gguf::touch_pages(map, off, off + len, &|_| true);
                    }
                }
                task.done.store(0, Ordering::Relaxed);
            }
            // After the weights are prepared: only what is still read from the file.
            Preload::FullBlocking => {}
            Preload::Full => {}
        }
        Ok(task)
    }

    /// The full strategies' read of every page the forward pass reads through the mapping
    /// (`touch`; prepared weights live in their copies), in the background (`Full`) or now
    /// (`FullBlocking`, reporting progress from `base` on). The embedding (`embd`), read a few
    /// rows per token, is only brought into the page cache: mapping all of it would put pages
    /// into the process that no token needs.
    pub(super) fn read_weights(
        &mut self,
        file: &GgufFile,
        preload: Preload,
        (touch, embd): (Vec<(usize, usize)>, (usize, usize)),
        report: &dyn Fn(f32) -> Result<()>,
        base: f32,
    ) -> Result<()> {
        if preload == Preload::Full {
            let mut ranges: Vec<_> = touch.into_iter().map(|(s, e)| (s, e, true)).collect();
            if !ranges.iter().any(|r| r.0 == embd.0) {
                ranges.push((embd.0, embd.1, false));
            }
            return self.spawn(file, ranges);
        }
        if !touch.iter().any(|r| r.0 == embd.0) {
            let mut at = embd.0;
            while at < embd.1 {
                let len = (4 << 20).min(embd.1 - at);
                file.advise_range(crate::gguf::Advice::WillNeed, at, len);
                at += len;
            }
        }
        let total: usize = touch.iter().map(|(s, e)| e - s).sum::<usize>().max(1);
        let mut done = 0;
        for (s, e) in touch {
            file.advise_range(crate::gguf::Advice::WillNeed, s, e - s);
            let cancelled = AtomicBool::new(false);
            crate::gguf::touch_pages(file.bytes(), s, e, &|n| {
                let f = base + (0.999 - base) * (done + n) as f32 / total as f32;
                let ok = report(f).is_ok();
                if !ok {
                    cancelled.store(true, Ordering::Relaxed);
                }
                ok
            });
            if cancelled.load(Ordering::Relaxed) {
                return Err(crate::Error::Cancelled);
            }
            done += e - s;
        }
        self.total = total as u64;
        self.done.store(total as u64, Ordering::Relaxed);
        self.finished.store(true, Ordering::Relaxed);
        Ok(())
    }
}
