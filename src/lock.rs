//! Exclusive use of an output. A process that writes a corpus (or one worker's share of it),
//! a run directory or an encoder holds an OS lock on a small file inside it for as long as it
//! writes, so a second writer is refused ("in use by pid N") instead of interleaving its bytes
//! with the first one's. The OS drops the lock when the process ends, however it ends, so a
//! kill never leaves a stale lock behind; the file itself stays (deleting it would let two
//! processes lock different files under one name).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK_PREFIX: &str = ".s2kit-lock";

/// Held for as long as the owner writes; dropping it releases the lock.
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
}

impl Drop for Lock {
    /// Unlocks explicitly rather than by closing: a child process being spawned by another
    /// thread holds a copy of every descriptor until its exec closes them, and the lock of a
    /// merely closed file lasts until that copy goes too, so relocking at once was refused.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// True for the name of a lock file (which does not make a directory "in use" by itself).
pub fn is_lock_file(name: &str) -> bool {
    name.starts_with(LOCK_PREFIX)
}

/// Locks `dir` (which must exist) for `role`: `None` for the whole directory, or a name for
/// one writer among several that share it (a generation worker).
pub fn lock_dir(dir: &Path, role: Option<&str>) -> Result<Lock> {
    let path = match role {
        None => dir.join(LOCK_PREFIX),
        Some(role) => dir.join(format!("{LOCK_PREFIX}-{role}")),
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("pid {pid}"),
            };
            let what = role.map_or(String::new(), |r| format!(" ({r})"));
            return Err(Error::Request(format!(
                "{}{what} is in use by {holder}, another s2kit writing there; wait for it to finish or choose another output",
                dir.display()
            )));
        }
        // File systems without flock (Lustre mounted without `-o flock`, some NFS setups)
        // cannot lock at all; refusing every writer there would make s2kit unusable, so the
        // writer goes ahead unprotected (docs/reliability.md says so).
        Err(TryLockError::Error(e)) if lock_unsupported(&e) => {}
        Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let stamp = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()
    };
    stamp(&mut file).map_err(|e| Error::io(&path, e))?;
    Ok(Lock { file, path })
}

fn lock_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::ENOLCK | libc::EOPNOTSUPP)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path(), None).unwrap();
        let err = lock_dir(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.contains(&format!("in use by pid {}", std::process::id())),
            "{err}"
        );
        // Another role is another lock.
        let _worker = lock_dir(dir.path(), Some("worker-0001")).unwrap();
        drop(first);
        lock_dir(dir.path(), None).unwrap();
    }

    #[test]
    fn dropping_releases_the_lock_while_a_copy_of_its_descriptor_lives() {
        // As a child process holds one between fork and exec.
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path(), None).unwrap();
        let copy = first.file.try_clone().unwrap();
        drop(first);
        lock_dir(dir.path(), None).unwrap();
        drop(copy);
    }
}
