//! File helpers: atomic writes (temp file in the same directory + rename), so a failure never
//! leaves a half-written file behind; output paths that may only be absent or regular files
//! (`-` meaning stdout); and bounded reads, so `/dev/zero` or a FIFO never exhausts memory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether an output path means stdout (`--out -`).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The output path, or `None` when it is `-` (stdout) or absent.
pub fn out_file(out: Option<&PathBuf>) -> Option<&Path> {
    out.map(PathBuf::as_path).filter(|p| !is_stdout(p))
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Checks an output path before anything is done: it must be absent or a regular file (a
/// symbolic link counts when it resolves to a regular file; the write then goes to that file and
/// the link stays). An existing file is refused unless `overwrite`. Returns the path to write:
/// the link's resolved target, or `path` itself.
pub fn check_output(path: &Path, overwrite: bool) -> Result<PathBuf> {
    check(path, overwrite, "refusing to overwrite it")
}

/// [`check_output`] for a command with a `--force` flag (the error names the flag).
pub fn check_output_force(path: &Path, force: bool) -> Result<PathBuf> {
    check(path, force, "pass --force to overwrite it")
}

fn check(path: &Path, overwrite: bool, exists_hint: &str) -> Result<PathBuf> {
    if is_stdout(path) {
        // Callers that support stdout handle `-` before writing; never create a file named `-`.
        return Err(Error::input(
            "'-' (stdout) is not accepted for this output: give a file name (./- for a file named '-')",
        ));
    }
    let refuse = |what: String| {
        Err(Error::input(format!(
            "{} is {what}, not a regular file: refusing to write it",
            path.display()
        )))
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::io(format!("cannot inspect {}", path.display()), e)),
    };
    let target = if meta.file_type().is_symlink() {
        let tmeta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return refuse("a symbolic link to a missing file".into()),
        };
        if !tmeta.file_type().is_file() {
            return refuse(format!(
                "a symbolic link to {}",
                kind_name(tmeta.file_type())
            ));
        }
        std::fs::canonicalize(path)
            .map_err(|e| Error::io(format!("cannot resolve {}", path.display()), e))?
    } else if meta.file_type().is_file() {
        path.to_path_buf()
    } else {
        return refuse(kind_name(meta.file_type()).into());
    };
    if !overwrite {
        return Err(Error::input(format!(
            "{} already exists: {exists_hint}",
            path.display()
        )));
    }
    Ok(target)
}

/// Checks an `--out-dir` before anything is done: an existing directory, or a path that does not
/// exist yet and whose nearest existing ancestor is a directory (it is created, with its parents,
/// when the first file is written: [`create_out_dir`]). Anything else is an error naming `flag`.
pub fn check_out_dir(dir: &Path, flag: &str) -> Result<()> {
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if p == dir => {
                return Err(Error::input(format!(
                    "{flag} {} is not a directory",
                    dir.display()
                )))
            }
            Ok(_) => {
                return Err(Error::input(format!(
                    "{flag} {}: {} is not a directory",
                    dir.display(),
                    p.display()
                )))
            }
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::io(format!("{flag} {}", dir.display()), e))
            }
            Err(_) => {}
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => return Ok(()),
        }
    }
}

/// Creates an output directory and its missing parents (mode 0755 before the umask); an existing
/// directory is left as it is.
pub fn create_out_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o755);
    b.create(dir)
        .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e))
}

/// Writes `bytes` to `path` atomically: a temp file next to it, fsync, rename. With
/// `overwrite == false` an existing file is an error and is left untouched. Anything that is not
/// absent or a regular file (device nodes, FIFOs, sockets, directories, dangling links) is
/// refused, `overwrite` or not; a symbolic link to a regular file has its target replaced, never
/// the link.
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    let target = check_output(path, overwrite)?;
    let path = target.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::input(format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("cannot write {}", path.display()), e));
    }
    // Checked again just before the rename: something may have appeared meanwhile.
    if let Err(e) = check_output(path, overwrite) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot write {}", path.display()), e)
    })
}

/// Reads at most `limit` bytes from `r`; more is an error naming `what` and the limit. Reads
/// `limit + 1` bytes at most, so an endless source (`/dev/zero`, a FIFO) never exhausts memory.
pub fn read_bounded(mut r: impl Read, what: &str, limit: u64) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    (&mut r)
        .take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io(format!("cannot read {what}"), e))?;
    if v.len() as u64 > limit {
        return Err(Error::input(format!(
            "{what} is larger than {} bytes: refusing to read it",
            limit
        )));
    }
    Ok(v)
}

/// Reads a file of at most `limit` bytes (see [`read_bounded`]); `what` names it in errors.
pub fn read_file_bounded(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::input(format!(
            "{what} {} is a directory",
            path.display()
        )));
    }
    read_bounded(f, &format!("{what} {}", path.display()), limit)
}

/// Reads a UTF-8 text file of at most `limit` bytes (see [`read_bounded`]).
pub fn read_text_bounded(path: &Path, what: &str, limit: u64) -> Result<String> {
    let bytes = read_file_bounded(path, what, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::input(format!("{what} {} is not UTF-8 text", path.display())))
}

/// The one PEM block of `text`: explanatory text before it is allowed (RFC 7468), but a second
/// block or anything but white space after it is refused, so a file never silently means only
/// its first part.
pub fn single_pem(text: &str, what: &str) -> Result<pem::Pem> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let start = text
        .find(BEGIN)
        .ok_or_else(|| Error::input(format!("{what} is not PEM: no BEGIN line")))?;
    let end = text[start..]
        .find(END)
        .map(|i| start + i + END.len())
        .ok_or_else(|| Error::input(format!("{what} is not PEM: no END line")))?;
    let after = text[end..]
        .find("-----")
        .map(|i| end + i + 5)
        .ok_or_else(|| Error::input(format!("{what} is not PEM: unterminated END line")))?;
    let rest = &text[after..];
    if text[..start].contains(END) || rest.contains(BEGIN) {
        return Err(Error::input(format!(
            "{what} holds more than one PEM block: give exactly one"
        )));
    }
    if !rest.trim().is_empty() {
        return Err(Error::input(format!(
            "{what} has {} bytes after its PEM block: give exactly one block and nothing after it",
            rest.trim_end().len()
        )));
    }
    pem::parse(&text[start..after])
        .map_err(|e| Error::input(format!("{what} is not valid PEM ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_absent_is_accepted_and_created_a_file_in_the_way_is_not() {
        let d = tempfile::tempdir().unwrap();
        let nested = d.path().join("a/b/certs");
        check_out_dir(&nested, "--out-dir").unwrap();
        assert!(!d.path().join("a").exists(), "checking creates nothing");
        create_out_dir(&nested).unwrap();
        assert!(nested.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & !0o022, 0o755 & !0o022, "mode {mode:o}");
        }
        create_out_dir(&nested).unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check_out_dir(&file, "--out-dir").unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
        let e = check_out_dir(&file.join("sub"), "--out-dir")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a directory"), "{e}");
        assert!(create_out_dir(&file.join("sub")).is_err());
    }

    #[test]
    fn atomic_write_and_refuse_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.pem");
        write_atomic(&p, b"one", false).unwrap();
        assert!(write_atomic(&p, b"two", false).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp files left"
        );
        assert!(write_atomic(&d.path().join("no/such/dir/f"), b"x", true).is_err());
    }
}

#[cfg(all(test, unix))]
mod hostile_tests {
    use super::*;
    use std::os::unix::fs::{symlink, FileTypeExt};

    fn mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn non_regular_outputs_are_refused_even_with_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let sock = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let to_null = d.path().join("to-null");
        symlink("/dev/null", &to_null).unwrap();
        let dangling = d.path().join("dangling");
        symlink(d.path().join("nothing"), &dangling).unwrap();
        let cases: [(&Path, &str); 6] = [
            (Path::new("/dev/null"), "is a character device"),
            (&fifo, "is a FIFO"),
            (&sock, "is a socket"),
            (&sub, "is a directory"),
            (&to_null, "is a symbolic link to a character device"),
            (&dangling, "is a symbolic link to a missing file"),
        ];
        for (p, want) in cases {
            for overwrite in [false, true] {
                let e = write_atomic(p, b"x", overwrite).unwrap_err().to_string();
                assert!(e.contains(want), "{}: {e}", p.display());
            }
        }
        // Nothing was replaced: the links are still links, the FIFO still a FIFO.
        assert!(std::fs::symlink_metadata(&to_null)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!std::fs::metadata(&fifo).unwrap().is_file());
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn a_link_to_a_regular_file_writes_the_target_and_keeps_the_link() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.pem");
        std::fs::write(&real, b"old").unwrap();
        let link = d.path().join("link.pem");
        symlink(&real, &link).unwrap();
        assert!(write_atomic(&link, b"new", false)
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        write_atomic(&link, b"new", true).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn stdout_dash_and_bounded_reads() {
        assert!(is_stdout(Path::new("-")));
        assert!(!is_stdout(Path::new("./-")));
        let e = write_atomic(Path::new("-"), b"x", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-' (stdout) is not accepted"), "{e}");
        let dash = PathBuf::from("-");
        assert_eq!(out_file(Some(&dash)), None);
        let f = PathBuf::from("f");
        assert_eq!(out_file(Some(&f)), Some(Path::new("f")));
        assert_eq!(read_bounded(&b"abcd"[..], "x", 4).unwrap(), b"abcd");
        let e = read_bounded(&b"abcde"[..], "x", 4).unwrap_err().to_string();
        assert!(e.contains("larger than 4 bytes"), "{e}");
        // An endless source stops at the bound.
        let e = read_file_bounded(Path::new("/dev/zero"), "PIN file", 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 1024 bytes"), "{e}");
    }
}
