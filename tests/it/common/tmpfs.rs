//! A small filesystem for disk-full tests: a tmpfs of a given size mounted on a test's
//! directory (root only), unmounted when dropped, so a failing test leaves no mount behind.

use super::{in_ci, is_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory, unmounted when dropped (a failing test too).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` on `dir`; `None` (the test skipped) outside CI when this is not
    /// root or the mount is refused (a container without the right).
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = is_root()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            assert!(!in_ci(), "cannot mount a tmpfs in CI (not root?)");
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
