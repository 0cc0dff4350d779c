//! Helpers shared by every configuration file (presets and recipes): loading with errors that
//! name the file and key, and small validators, so that each bad value gets one clear line.

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

pub fn check_prob(name: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!("{name} = {p} must lie in [0, 1]")));
    }
    Ok(())
}
