//! KernelSynth: a draw from a Gaussian-process prior on [0, 1] whose kernel combines 1..k
//! kernels from a fixed bank with + or ×.
//!
//! Cost: the reference factorises an L×L matrix per draw (44 s per channel at L = 4096). We
//! draw the GP on at most `max_gp_points` grid points and interpolate linearly, which keeps
//! the cost flat in L; below that size the draw is exact.

use super::Excitation;
use crate::checks::check_range;
use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KernelSynthConfig {
    pub max_kernels: usize,
    pub max_gp_points: usize,
    /// Periods, in samples, of the periodic (ExpSineSquared) kernels.
    pub periods: Vec<f64>,
}

impl Default for KernelSynthConfig {
    fn default() -> Self {
        KernelSynthConfig {
            max_kernels: 5,
            max_gp_points: 512,
            periods: vec![
                24.0, 48.0, 96.0, 168.0, 336.0, 672.0, 7.0, 14.0, 30.0, 60.0, 365.0, 730.0, 4.0,
                26.0, 52.0, 4.0, 6.0, 12.0, 4.0, 40.0, 10.0,
            ],
        }
    }
}

impl KernelSynthConfig {
    pub fn validate(&self) -> Result<()> {
        check_range(
            "excitation.kernel_synth.max_kernels",
            1.0,
            self.max_kernels as f64,
            1.0,
        )?;
        if self.max_gp_points < 8 {
            return Err(Error::Config(
                "excitation.kernel_synth.max_gp_points must be >= 8".into(),
            ));
        }
        if self.periods.iter().any(|p| !(p.is_finite() && *p > 0.0)) {
            return Err(Error::Config(
                "excitation.kernel_synth: periods must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Kernel {
    Constant,
    White(f64),
    Linear(f64),
    Rbf(f64),
    RationalQuadratic(f64),
    Periodic(f64),
}

impl Kernel {
    fn eval(self, s: f64, t: f64) -> f64 {
        let d = s - t;
        match self {
            Kernel::Constant => 1.0,
            Kernel::White(level) => {
                if d == 0.0 {
                    level
                } else {
                    0.0
                }
            }
            Kernel::Linear(sigma0) => sigma0 * sigma0 + s * t,
            Kernel::Rbf(ell) => (-d * d / (2.0 * ell * ell)).exp(),
            Kernel::RationalQuadratic(alpha) => (1.0 + d * d / (2.0 * alpha)).powf(-alpha),
            Kernel::Periodic(period) => {
                let s = (std::f64::consts::PI * d.abs() / period).sin();
                (-2.0 * s * s).exp()
            }
        }
    }
}

pub struct KernelSynth {
    cfg: KernelSynthConfig,
}

impl KernelSynth {
    pub fn new(cfg: KernelSynthConfig) -> Self {
        KernelSynth { cfg }
    }

    fn random_kernel(&self, rng: &mut SampleRng, len: usize) -> Kernel {
        let pick3 = |rng: &mut SampleRng, v: [f64; 3]| v[rng.random_range(0..3)];
        let n_periodic = self.cfg.periods.len();
        // The bank: every periodic kernel, plus three of each parametric family and a constant.
        let bank = n_periodic + 3 * 4 + 1;
        let k = rng.random_range(0..bank);
        if k < n_periodic {
            return Kernel::Periodic(self.cfg.periods[k] / len as f64);
        }
        match (k - n_periodic) / 3 {
            0 => Kernel::Linear(pick3(rng, [0.0, 1.0, 10.0])),
            1 => Kernel::Rbf(pick3(rng, [0.1, 1.0, 10.0])),
            2 => Kernel::RationalQuadratic(pick3(rng, [0.1, 1.0, 10.0])),
            3 => Kernel::White(pick3(rng, [0.1, 1.0, 2.0])),
            _ => Kernel::Constant,
        }
    }
}

/// In-place lower Cholesky factor of a symmetric positive semi-definite matrix, with growing
/// diagonal jitter until it succeeds.
fn cholesky(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let original = a.clone();
    let mut jitter = 1e-9;
    loop {
        let mut ok = true;
        'outer: for j in 0..n {
            let mut d = a[j * n + j] + jitter;
            for k in 0..j {
                d -= a[j * n + k] * a[j * n + k];
            }
            if d <= 0.0 || !d.is_finite() {
                ok = false;
                break 'outer;
            }
            let d = d.sqrt();
            a[j * n + j] = d;
            for i in j + 1..n {
                let mut v = a[i * n + j];
                for k in 0..j {
                    v -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = v / d;
            }
        }
        if ok {
            for i in 0..n {
                for j in i + 1..n {
                    a[i * n + j] = 0.0;
                }
            }
            return a;
        }
        jitter *= 10.0;
        a.copy_from_slice(&original);
    }
}

impl Excitation for KernelSynth {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let n_kernels = rng.random_range(1..=self.cfg.max_kernels);
        let mut kernels = vec![(self.random_kernel(rng, len), true)];
        for _ in 1..n_kernels {
            let add = rng.random_bool(0.5);
            kernels.push((self.random_kernel(rng, len), add));
        }
        let n = len.min(self.cfg.max_gp_points).max(2);
        let grid: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let mut cov = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut v = kernels[0].0.eval(grid[i], grid[j]);
                for (k, add) in &kernels[1..] {
                    let kv = k.eval(grid[i], grid[j]);
                    v = if *add { v + kv } else { v * kv };
                }
                cov[i * n + j] = v;
                cov[j * n + i] = v;
            }
        }
        let l = cholesky(cov, n);
        let z: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        let coarse: Vec<f64> = (0..n)
            .map(|i| (0..=i).map(|k| l[i * n + k] * z[k]).sum())
            .collect();
        interpolate(&coarse, len)
    }
}

/// Linear interpolation of `coarse` (on an even grid over [0, 1]) onto `len` even points.
fn interpolate(coarse: &[f64], len: usize) -> Vec<f64> {
    if coarse.len() == len {
        return coarse.to_vec();
    }
    let m = coarse.len() - 1;
    (0..len)
        .map(|i| {
            let pos = if len > 1 {
                i as f64 * m as f64 / (len - 1) as f64
            } else {
                0.0
            };
            let k = (pos.floor() as usize).min(m - 1);
            let frac = pos - k as f64;
            coarse[k] * (1.0 - frac) + coarse[k + 1] * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn cholesky_reconstructs_the_matrix() {
        let n = 3;
        let a = vec![4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let l = cholesky(a.clone(), n);
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                assert!((v - a[i * n + j]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn rbf_draws_have_unit_marginal_variance() {
        // A GP with an RBF kernel has Var[f(t)] = 1 at every t.
        let n = 64;
        let grid: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let mut cov = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                cov[i * n + j] = Kernel::Rbf(0.1).eval(grid[i], grid[j]);
            }
        }
        let l = cholesky(cov, n);
        let mut rng = sample_rng(13, 0);
        let draws = 4000;
        let mut sum_sq = 0.0;
        for _ in 0..draws {
            let z: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
            let f_mid: f64 = (0..n).map(|k| l[(n / 2) * n + k] * z[k]).sum();
            sum_sq += f_mid * f_mid;
        }
        let var = sum_sq / draws as f64;
        assert!((var - 1.0).abs() < 0.08, "{var}");
    }

    #[test]
    fn long_series_use_the_interpolated_grid() {
        let ks = KernelSynth::new(KernelSynthConfig::default());
        let mut rng = sample_rng(14, 0);
        let x = ks.sample(&mut rng, 4096);
        assert_eq!(x.len(), 4096);
        assert!(x.iter().all(|v| v.is_finite()));
    }
}
