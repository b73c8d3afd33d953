//! Per-test scratch directories that are removed when the test ends, also
//! when it fails: test binaries run many tests per process, so one directory
//! per process would outlive every test and pile up in the temp dir.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the temp dir, removed with its contents on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One file in its own [`Scratch`] directory; both go away on drop.
pub struct TmpFile {
    path: PathBuf,
    _dir: Scratch,
}

impl TmpFile {
    pub fn new(tag: &str, name: &str, bytes: &[u8]) -> Self {
        let dir = Scratch::new(tag);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        TmpFile { path, _dir: dir }
    }
}

impl Deref for TmpFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TmpFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for TmpFile {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}
