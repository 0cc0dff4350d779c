//! Acceptance rules for one output series. A sample is accepted only if every output passes;
//! nothing is ever stitched from several draws.

use crate::excitation::mean_std;
use crate::preset::ValidationConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NonFinite,
    OutOfBounds,
    NearConstant,
}

pub fn check_series(y: &[f64], cfg: &ValidationConfig) -> Result<(), Rejection> {
    if y.iter().any(|v| !v.is_finite()) {
        return Err(Rejection::NonFinite);
    }
    if y.iter().any(|v| v.abs() > cfg.max_abs) {
        return Err(Rejection::OutOfBounds);
    }
    let (_, sd) = mean_std(y);
    let level = (y.iter().map(|v| v.abs()).sum::<f64>() / y.len().max(1) as f64).max(1.0);
    if sd <= cfg.min_rel_std * level {
        return Err(Rejection::NearConstant);
    }
    Ok(())
}

/// Z-scores a channel in place; `None` for a constant or non-finite channel (which the
/// reference would have turned into NaN).
pub fn z_score(x: &mut [f64]) -> Option<()> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (mean, sd) = mean_std(x);
    if !(sd > 1e-12 * mean.abs().max(1.0)) {
        return None;
    }
    x.iter_mut().for_each(|v| *v = (*v - mean) / sd);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_rejects_what_it_names() {
        let cfg = ValidationConfig::default();
        assert_eq!(
            check_series(&[1.0, f64::NAN], &cfg),
            Err(Rejection::NonFinite)
        );
        assert_eq!(
            check_series(&[1.0, f64::INFINITY], &cfg),
            Err(Rejection::NonFinite)
        );
        assert_eq!(
            check_series(&[1.0, 2000.0], &cfg),
            Err(Rejection::OutOfBounds)
        );
        assert_eq!(check_series(&[5.0; 10], &cfg), Err(Rejection::NearConstant));
        assert_eq!(
            check_series(&[500.0, 500.0 + 1e-9], &cfg),
            Err(Rejection::NearConstant)
        );
        assert_eq!(check_series(&[1.0, 2.0, 3.0], &cfg), Ok(()));
    }

    #[test]
    fn constant_channels_cannot_be_z_scored() {
        assert!(z_score(&mut [3.0; 8]).is_none());
        let mut x = [1.0, 2.0, 3.0];
        z_score(&mut x).unwrap();
        let (m, s) = mean_std(&x);
        assert!(m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    }
}
