//! Files and directories that only their owner can open: a local repository
//! and the metadata cache hold key files, whose password an attacker could
//! guess offline once copied. Modes are set explicitly after creation, so the
//! result is 0600 for files and 0700 for directories whatever the umask.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file ironvault creates in a repository or cache.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory ironvault creates there.
pub const DIR_MODE: u32 = 0o700;

/// Create `path` (which must not exist) for writing, mode 0600.
pub fn create_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    // The umask may have cleared bits of 0600 too (the owner's own read).
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// mkdir(2) with mode 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Create `dir` and its missing parents, each with mode 0700; existing
/// directories keep their mode.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

/// Take group and other access away from a directory this user owns (one
/// made by an older version under a looser umask). Best effort: a
/// directory owned by someone else is left as it is.
pub fn tighten_dir(dir: &Path) {
    if let Ok(m) = std::fs::metadata(dir) {
        if m.is_dir() && m.permissions().mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE));
        }
    }
}

/// Write a whole small file as `tmp` then rename it to `path`, mode 0600.
pub fn write_replace(path: &Path, tmp: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let write = || -> io::Result<()> {
        let mut f = create_file(tmp)?;
        f.write_all(data)?;
        std::fs::rename(tmp, path)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r
}
