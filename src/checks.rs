//! Small validators shared by every configuration struct, so that each bad value gets a
//! one-line error naming its key.

use crate::error::{Error, Result};

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
