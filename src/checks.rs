//! Helpers shared by every configuration file (presets and recipes): loading with errors that
//! name the file and key, and small validators, so that each bad value gets one clear line;
//! and the two output-file helpers every writer uses (checking a target, replacing it
//! atomically).

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parses a TOML file and runs `validate` on it; every error names the file.
pub fn read_toml<T: DeserializeOwned>(
    path: &Path,
    validate: impl Fn(&T) -> Result<()>,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let named = |message: String| Error::ConfigFile {
        path: path.to_path_buf(),
        message,
    };
    let value: T =
        toml::from_str(&text).map_err(|e| named(e.to_string().trim().replace('\n', " ")))?;
    validate(&value).map_err(|e| named(e.to_string()))?;
    Ok(value)
}

/// Checks `min <= lo <= hi` for the range stored under `name`.
pub fn check_range(name: &str, lo: f64, hi: f64, min: f64) -> Result<()> {
    if !lo.is_finite() || !hi.is_finite() || lo > hi || lo < min {
        return Err(Error::Config(format!(
            "{name}: impossible range [{lo}, {hi}] (need {min} <= low <= high)"
        )));
    }
    Ok(())
}

/// Checks, before any work, that an output file can be written at `path`: its directory
/// exists, it is not a directory itself, and an existing file is replaced only if `overwrite`.
pub fn check_output_file(path: &Path, overwrite: bool) -> Result<()> {
    let refuse = |why: &str| Err(Error::Request(format!("{}: {why}", path.display())));
    if path.is_dir() {
        return refuse("is a directory; give a file name");
    }
    if path.exists() && !overwrite {
        return refuse("exists; pass --force to replace it");
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if parent.is_some_and(|p| !p.is_dir()) {
        return refuse("its directory does not exist");
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file that is synced and renamed over it, so a
/// kill at any moment leaves either the old file or the new one, never a partial one.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Checks `min <= value <= max` for the count stored under `name`. The upper limit keeps a
/// mistyped count from becoming an allocation failure or a run that never ends.
pub fn check_count(name: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if !(min..=max).contains(&value) {
        return Err(Error::Config(format!(
            "{name} = {value} must lie in [{min}, {max}]"
        )));
    }
    Ok(())
}

pub fn check_prob(name: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!("{name} = {p} must lie in [0, 1]")));
    }
    Ok(())
}
