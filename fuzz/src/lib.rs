//! Helpers shared by the fuzz targets.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A private scratch directory for this fuzzing process (on /dev/shm when there is one), where the
/// targets whose parser reads a file write their input. Removed by nobody: it is one small
/// directory per run, named after the process id.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("hsm-demo-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz scratch directory");
        d
    })
}

/// Writes `data` to `name` in the scratch directory and returns its path.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch_dir().join(name);
    std::fs::write(&p, data).expect("write the fuzz input");
    p
}

/// The error rule: what `main` prints for a refused input is one non-empty line.
pub fn check_error(e: &hsm_demo::Error) {
    let m = e.one_line();
    assert!(!m.trim().is_empty(), "empty error message for {e:?}");
    assert!(!m.contains(['\n', '\r']), "multi-line error: {m:?}");
}
