//! ARMA(p, q) driven by N(0,1) noise. The AR polynomial is built from sampled roots inside
//! the unit circle, so every draw is stationary by construction.

use super::Excitation;
use crate::checks::{check_count, check_range};
use crate::error::{Error, Result};
use crate::rng::{uniform, SampleRng};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArmaConfig {
    pub p_max: usize,
    pub q_max: usize,
    /// Modulus of a complex AR root pair ρ·e^{±iω}, and its period 2π/ω in samples.
    pub complex_modulus: [f64; 2],
    pub complex_period: [f64; 2],
    /// Magnitude of real AR roots (sign ±1).
    pub real_modulus: [f64; 2],
    /// MA coefficients θ_j = s_j·c·α^j.
    pub ma_decay: [f64; 2],
    pub ma_scale: [f64; 2],
    /// Draws whose |x| exceeds this are redrawn (as in the reference).
    pub max_abs: f64,
    /// Samples discarded so the series starts in the stationary regime.
    pub burn_in: usize,
}

impl Default for ArmaConfig {
    fn default() -> Self {
        ArmaConfig {
            p_max: 2,
            q_max: 4,
            complex_modulus: [0.85, 0.98],
            complex_period: [8.0, 48.0],
            real_modulus: [0.595, 0.92],
            ma_decay: [0.4, 0.85],
            ma_scale: [0.35, 0.9],
            max_abs: 512.0,
            burn_in: 200,
        }
    }
}

impl ArmaConfig {
    pub fn validate(&self) -> Result<()> {
        check_count("excitation.arma.p_max", self.p_max, 1, 64)?;
        check_count("excitation.arma.q_max", self.q_max, 1, 64)?;
        check_count("excitation.arma.burn_in", self.burn_in, 0, 100_000)?;
        check_range(
            "excitation.arma.complex_modulus",
            self.complex_modulus[0],
            self.complex_modulus[1],
            0.0,
        )?;
        check_range(
            "excitation.arma.real_modulus",
            self.real_modulus[0],
            self.real_modulus[1],
            0.0,
        )?;
        if self.complex_modulus[1] >= 1.0 || self.real_modulus[1] >= 1.0 {
            return Err(Error::Config(
                "excitation.arma: AR root moduli must stay below 1 for stationarity".into(),
            ));
        }
        check_range(
            "excitation.arma.complex_period",
            self.complex_period[0],
            self.complex_period[1],
            2.0,
        )?;
        check_range(
            "excitation.arma.ma_decay",
            self.ma_decay[0],
            self.ma_decay[1],
            0.0,
        )?;
        check_range(
            "excitation.arma.ma_scale",
            self.ma_scale[0],
            self.ma_scale[1],
            0.0,
        )?;
        if self.max_abs.is_nan() || self.max_abs <= 0.0 {
            return Err(Error::Config("excitation.arma.max_abs must be > 0".into()));
        }
        Ok(())
    }
}

pub struct Arma {
    cfg: ArmaConfig,
}

impl Arma {
    pub fn new(cfg: ArmaConfig) -> Self {
        Arma { cfg }
    }

    /// AR coefficients φ (x_t = Σ φ_i x_{t-i} + ...) from roots inside the unit circle.
    fn ar_coefficients(&self, rng: &mut SampleRng) -> Vec<f64> {
        let p = rng.random_range(1..=self.cfg.p_max);
        // Polynomial 1 - φ1 B - φ2 B² ... = Π (1 - r_i B); keep coefficients of Π.
        let mut poly = vec![1.0f64];
        let mut remaining = p;
        while remaining > 0 {
            if remaining >= 2 && rng.random_bool(0.5) {
                let rho = uniform(rng, self.cfg.complex_modulus);
                let omega = 2.0 * std::f64::consts::PI / uniform(rng, self.cfg.complex_period);
                poly = poly_mul(&poly, &[1.0, -2.0 * rho * omega.cos(), rho * rho]);
                remaining -= 2;
            } else {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let r = sign * uniform(rng, self.cfg.real_modulus);
                poly = poly_mul(&poly, &[1.0, -r]);
                remaining -= 1;
            }
        }
        poly[1..].iter().map(|c| -c).collect()
    }

    fn ma_coefficients(&self, rng: &mut SampleRng) -> Vec<f64> {
        let q = rng.random_range(1..=self.cfg.q_max);
        let alpha = uniform(rng, self.cfg.ma_decay);
        let c = uniform(rng, self.cfg.ma_scale);
        (1..=q)
            .map(|j| {
                let s = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                s * c * alpha.powi(j as i32)
            })
            .collect()
    }

    fn filter(&self, rng: &mut SampleRng, phi: &[f64], theta: &[f64], len: usize) -> Vec<f64> {
        let total = len + self.cfg.burn_in;
        let noise: Vec<f64> = (0..total).map(|_| rng.sample(StandardNormal)).collect();
        let mut x = vec![0.0; total];
        for t in 0..total {
            let mut v = noise[t];
            for (i, ph) in phi.iter().enumerate() {
                if t > i {
                    v += ph * x[t - 1 - i];
                }
            }
            for (j, th) in theta.iter().enumerate() {
                if t > j {
                    v += th * noise[t - 1 - j];
                }
            }
            x[t] = v;
        }
        x.split_off(self.cfg.burn_in)
    }
}

fn poly_mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

impl Excitation for Arma {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        // Bounded redraws; a draw still out of bounds is left for sample validation to reject.
        let mut x = Vec::new();
        for _ in 0..8 {
            let phi = self.ar_coefficients(rng);
            let theta = self.ma_coefficients(rng);
            x = self.filter(rng, &phi, &theta, len);
            if x.iter().all(|v| v.abs() <= self.cfg.max_abs) {
                break;
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::excitation::mean_std;
    use crate::rng::sample_rng;

    /// Largest modulus among the roots of z^p - φ1 z^{p-1} - ... - φp (p <= 2).
    fn max_root_modulus(phi: &[f64]) -> f64 {
        match phi.len() {
            1 => phi[0].abs(),
            2 => {
                let (a, b) = (phi[0], phi[1]);
                let disc = a * a + 4.0 * b;
                if disc >= 0.0 {
                    ((a + disc.sqrt()) / 2.0)
                        .abs()
                        .max(((a - disc.sqrt()) / 2.0).abs())
                } else {
                    (-b).sqrt()
                }
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_ar_draw_is_stationary() {
        let arma = Arma::new(ArmaConfig::default());
        let mut rng = sample_rng(11, 0);
        for _ in 0..5000 {
            let phi = arma.ar_coefficients(&mut rng);
            assert!(max_root_modulus(&phi) < 0.99, "{phi:?}");
        }
    }

    #[test]
    fn long_series_have_stable_variance_and_ar1_autocorrelation() {
        let arma = Arma::new(ArmaConfig::default());
        let mut rng = sample_rng(12, 0);
        for _ in 0..20 {
            let phi = arma.ar_coefficients(&mut rng);
            let x = arma.filter(&mut rng, &phi, &[], 40_000);
            let (_, s1) = mean_std(&x[..20_000]);
            let (_, s2) = mean_std(&x[20_000..]);
            assert!(
                s2 / s1 < 1.3 && s1 / s2 < 1.3,
                "variance drifts: {s1} vs {s2}"
            );
            if phi.len() == 1 {
                let (m, s) = mean_std(&x);
                let lag1 = x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum::<f64>()
                    / ((x.len() - 1) as f64 * s * s);
                assert!((lag1 - phi[0]).abs() < 0.03, "lag-1 {lag1} vs φ {}", phi[0]);
            }
        }
    }
}
