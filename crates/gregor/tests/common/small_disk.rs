//! A small tmpfs for tests that fill a disk (the tests run as root).

use std::path::PathBuf;

/// A small tmpfs the broker keeps its data on, unmounted when dropped.
pub struct SmallDisk {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount (the tests run as root)");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {}",
            path.display()
        );
        SmallDisk { _dir: dir, path }
    }

    /// Takes whatever room is left with a ballast file.
    pub fn fill_rest(&self) {
        use std::io::Write;
        let mut ballast = std::fs::File::create(self.path.join("ballast")).unwrap();
        let page = [0u8; 4096];
        while ballast.write_all(&page).is_ok() {}
        let _ = ballast.sync_all();
    }

    /// Gives `bytes` of the ballast's room back.
    pub fn give_back(&self, bytes: u64) {
        let ballast = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("ballast"))
            .unwrap();
        let len = ballast.metadata().unwrap().len();
        ballast.set_len(len.saturating_sub(bytes)).unwrap();
    }

    /// Gives the ballast's room back.
    pub fn free(&self) {
        std::fs::remove_file(self.path.join("ballast")).unwrap();
    }

    pub fn temp_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(".tmp") {
                    found.push(path);
                }
            }
        }
        found
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
