//! Acceptance rules for one output series. A sample is accepted only if every output passes;
//! nothing is ever stitched from several draws.

use crate::excitation::mean_std;
use crate::ode::SolveError;
use crate::preset::ValidationConfig;
use crate::store::Rejections;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NonFinite,
    OutOfBounds,
    NearConstant,
    /// The output changes far more than its inputs under a tiny perturbation (e.g.
    /// cos(exp(8·x)) with exp(...) ~ 1e20): its values then depend on the last bits of the
    /// maths library, and the symbol no longer describes the series.
    IllConditioned,
}

impl Rejection {
    /// Counts this rejection in `tally`.
    pub fn count(self, tally: &mut Rejections) {
        let slot = match self {
            Rejection::NonFinite => &mut tally.non_finite,
            Rejection::OutOfBounds => &mut tally.out_of_bounds,
            Rejection::NearConstant => &mut tally.near_constant,
            Rejection::IllConditioned => &mut tally.ill_conditioned,
        };
        *slot += 1;
    }
}

/// Counts an abandoned ODE integration in `tally`.
pub fn count_solver_failure(e: &SolveError, tally: &mut Rejections) {
    let slot = match e {
        SolveError::Diverged { .. } => &mut tally.ode_diverged,
        SolveError::StepUnderflow { .. } => &mut tally.ode_step_underflow,
        SolveError::TooManySteps => &mut tally.ode_too_many_steps,
    };
    *slot += 1;
}

/// Relative perturbation applied to every input to probe conditioning.
pub const PERTURBATION: f64 = 1e-7;

/// Compares outputs `y` and `y_perturbed` (inputs scaled by 1 + PERTURBATION) from point
/// `start` on: the relative change, measured against max(|y|, std(y)) where `sd` = std(y),
/// may be at most `max_condition` × PERTURBATION.
pub fn check_conditioning(
    y: &[f64],
    sd: f64,
    start: usize,
    y_perturbed: &[f64],
    max_condition: f64,
) -> Result<(), Rejection> {
    let limit = max_condition * PERTURBATION;
    let stable = y[start..].iter().zip(y_perturbed).all(|(a, b)| {
        let scale = a.abs().max(sd);
        (a - b).abs() <= limit * scale
    });
    if stable {
        Ok(())
    } else {
        Err(Rejection::IllConditioned)
    }
}

/// Every acceptance rule for a whole output series.
pub fn check_series(y: &[f64], cfg: &ValidationConfig) -> Result<(), Rejection> {
    check_values(y, cfg)?;
    check_spread(y, cfg).map(|_| ())
}

/// The point-wise rules, which a block of a series can fail on its own: non-finite values
/// first, then values out of bounds. Checked block by block, the first failing block
/// decides between the two.
pub fn check_values(y: &[f64], cfg: &ValidationConfig) -> Result<(), Rejection> {
    if y.iter().any(|v| !v.is_finite()) {
        return Err(Rejection::NonFinite);
    }
    if y.iter().any(|v| v.abs() > cfg.max_abs) {
        return Err(Rejection::OutOfBounds);
    }
    Ok(())
}

/// The rule on the whole series: it must not be near-constant. Returns its standard
/// deviation.
pub fn check_spread(y: &[f64], cfg: &ValidationConfig) -> Result<f64, Rejection> {
    let (_, sd) = mean_std(y);
    let level = (y.iter().map(|v| v.abs()).sum::<f64>() / y.len().max(1) as f64).max(1.0);
    if sd <= cfg.min_rel_std * level {
        return Err(Rejection::NearConstant);
    }
    Ok(sd)
}

/// Z-scores a channel in place; `None` for a constant or non-finite channel (which the
/// reference would have turned into NaN).
pub fn z_score(x: &mut [f64]) -> Option<()> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (mean, sd) = mean_std(x);
    if sd.is_nan() || sd <= 1e-12 * mean.abs().max(1.0) {
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
    fn conditioning_rejects_amplified_perturbations() {
        let y = [1.0, 2.0, 3.0];
        let mild: Vec<f64> = y.iter().map(|v| v * (1.0 + 10.0 * PERTURBATION)).collect();
        let sd = mean_std(&y).1;
        assert_eq!(check_conditioning(&y, sd, 0, &mild, 1e3), Ok(()));
        let wild: Vec<f64> = y.iter().map(|v| v * (1.0 + 1e4 * PERTURBATION)).collect();
        assert_eq!(
            check_conditioning(&y, sd, 0, &wild, 1e3),
            Err(Rejection::IllConditioned)
        );
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
