//! Opening files without blocking: what Woolly reads (model files, sysfs and procfs) must be a
//! regular file, because opening a FIFO for reading blocks until a writer appears, and reading a
//! character device may never end.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::path::Path;

/// What a file that is not a regular file is, in words ("a FIFO (named pipe)", "a directory").
pub fn describe(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_char_device() {
            return "a character device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn not_regular(meta: &Metadata) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("is {}, not a regular file", describe(&meta.file_type())),
    )
}

/// The metadata of `path` (symbolic links followed) when it is a regular file; an
/// [`std::io::ErrorKind::InvalidInput`] error saying what it is otherwise.
pub fn regular_file_metadata(path: &Path) -> std::io::Result<Metadata> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(not_regular(&meta))
    }
}

/// Opens `path` for reading when it is a regular file, never blocking on the way: the type is
/// checked before opening, the file is opened with `O_NONBLOCK` (a FIFO swapped in between does
/// not block the open) and checked again on the descriptor.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    regular_file_metadata(path)?;
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok(file)
}

/// The text of a small regular file (a sysfs or procfs entry, at most 1 MiB read), or `None`
/// when it is missing, unreadable, not a regular file or not text. Never blocks on a FIFO.
pub fn read_small(path: &Path) -> Option<String> {
    let f = open_regular(path).ok()?;
    let mut s = String::new();
    f.take(1 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("woolly-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert_eq!(read_small(&fifo), None);
        let e = open_regular(&dir).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert!(open_regular(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("character device"));
        let file = dir.join("f");
        std::fs::write(&file, "42\n").unwrap();
        assert_eq!(read_small(&file).as_deref(), Some("42\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
