//! KernelSynth: a random process on [0, 1] whose covariance combines 1..k kernels from a
//! fixed bank with + or ×.
//!
//! The reference factorises an L×L covariance per draw (O(L³): 3.8 ms per channel at L = 256
//! here, 44 s at L = 4096). Instead, each kernel is drawn on its own and the draws are added
//! or multiplied: for independent zero-mean processes the sum has the sum covariance and the
//! product has the product covariance, so the result has exactly the combined kernel's
//! covariance. Sums stay Gaussian; products are not Gaussian in their marginals, the one way
//! this differs from a GP prior draw. Periodic kernels are drawn exactly from their Fourier
//! series, the other stationary kernels by circulant embedding (FFT, O(L log L)), and the
//! linear kernel is a random line.

use super::Excitation;
use crate::checks::check_count;
use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KernelSynthConfig {
    pub max_kernels: usize,
    /// Periods, in samples, of the periodic (ExpSineSquared) kernels.
    pub periods: Vec<f64>,
}

impl Default for KernelSynthConfig {
    fn default() -> Self {
        KernelSynthConfig {
            max_kernels: 5,
            periods: vec![
                24.0, 48.0, 96.0, 168.0, 336.0, 672.0, 7.0, 14.0, 30.0, 60.0, 365.0, 730.0, 4.0,
                26.0, 52.0, 4.0, 6.0, 12.0, 4.0, 40.0, 10.0,
            ],
        }
    }
}

impl KernelSynthConfig {
    pub fn validate(&self) -> Result<()> {
        check_count(
            "excitation.kernel_synth.max_kernels",
            self.max_kernels,
            1,
            64,
        )?;
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
    /// σ0² + s·t
    Linear(f64),
    Rbf(f64),
    RationalQuadratic(f64),
    Periodic(f64),
}

impl Kernel {
    /// Covariance at lag `d` for the stationary kernels.
    fn at_lag(self, d: f64) -> f64 {
        match self {
            Kernel::Constant => 1.0,
            Kernel::White(level) => {
                if d == 0.0 {
                    level
                } else {
                    0.0
                }
            }
            Kernel::Linear(_) => unreachable!("the linear kernel is not stationary"),
            Kernel::Rbf(ell) => (-d * d / (2.0 * ell * ell)).exp(),
            Kernel::RationalQuadratic(alpha) => (1.0 + d * d / (2.0 * alpha)).powf(-alpha),
            Kernel::Periodic(period) => {
                let s = (PI * d.abs() / period).sin();
                (-2.0 * s * s).exp()
            }
        }
    }

    /// What every draw of this kernel on the even grid of `n` points over [0, 1] shares.
    fn plan(self, n: usize) -> Plan {
        let step = 1.0 / (n.max(2) - 1) as f64;
        match self {
            Kernel::Linear(sigma0) => Plan::Line { sigma0, step, n },
            Kernel::Periodic(period) => Plan::Phases(
                (0..n)
                    .map(|i| (2.0 * PI * i as f64 * step / period).sin_cos())
                    .collect(),
            ),
            stationary => Plan::Scales {
                scales: circulant_scales(n, |lag| stationary.at_lag(lag as f64 * step)),
                n,
            },
        }
    }

    /// One zero-mean draw with this covariance on the even grid of `n` points over [0, 1].
    #[cfg(test)]
    fn draw(self, rng: &mut SampleRng, n: usize) -> Vec<f64> {
        self.plan(n).draw(rng)
    }
}

/// The part of a kernel's draws that depends on no random number, so that it is computed once
/// per kernel of the bank rather than per draw: the sines and FFTs it saves were most of
/// KernelSynth's time.
enum Plan {
    /// σ0·z0 + t·z1 on `n` points `step` apart.
    Line { sigma0: f64, step: f64, n: usize },
    /// (sin, cos) of the first harmonic's phase at each point.
    Phases(Vec<(f64, f64)>),
    /// The circulant embedding's noise scale per frequency, for `n` points.
    Scales { scales: Vec<f64>, n: usize },
}

impl Plan {
    fn draw(&self, rng: &mut SampleRng) -> Vec<f64> {
        match self {
            Plan::Line { sigma0, step, n } => {
                let (z0, z1): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
                (0..*n)
                    .map(|i| sigma0 * z0 + i as f64 * step * z1)
                    .collect()
            }
            Plan::Phases(phases) => periodic_draw(rng, phases),
            Plan::Scales { scales, n } => circulant_draw(rng, scales, *n),
        }
    }
}

/// Modified Bessel functions I_n(1), n = 0..8 (the tail beyond is below 1e-8).
const BESSEL_I_AT_1: [f64; 9] = [
    1.266_065_877_752_008,
    0.565_159_103_992_485,
    0.135_747_669_767_038,
    0.022_168_424_924_332,
    0.002_737_120_221_047,
    0.000_271_463_155_957,
    0.000_022_488_661_477,
    0.000_001_599_218_231,
    0.000_000_099_606_240,
];

/// exp(−2 sin²(πd/P)) = e⁻¹ exp(cos(2πd/P)) = e⁻¹ [I₀(1) + 2 Σₙ Iₙ(1) cos(2πnd/P)], so a
/// random Fourier series with these weights has exactly the periodic kernel's covariance.
/// Harmonic n's angle comes from the first's (`phases`, per point) by angle addition.
fn periodic_draw(rng: &mut SampleRng, phases: &[(f64, f64)]) -> Vec<f64> {
    // Weighted coefficients of cos and sin per harmonic (the sine of harmonic 0 is unused).
    let terms: Vec<(f64, f64)> = BESSEL_I_AT_1
        .iter()
        .enumerate()
        .map(|(k, i_k)| {
            let w = (if k == 0 { 1.0 } else { 2.0 } * i_k / std::f64::consts::E).sqrt();
            let (a, b): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            (w * a, w * b)
        })
        .collect();
    phases
        .iter()
        .map(|&(s1, c1)| {
            let (mut c, mut s) = (1.0, 0.0); // cos and sin of k·phase
            let mut value = terms[0].0;
            for &(wa, wb) in &terms[1..] {
                (c, s) = (c * c1 - s * s1, s * c1 + c * s1);
                value += wa * c + wb * s;
            }
            value
        })
        .collect()
}

/// Circulant embedding (Dietrich & Newsam): embed the n×n Toeplitz covariance in an m×m
/// circulant one, whose eigenvalues are the FFT of its first row; a draw colours complex white
/// noise with their square roots. Negative eigenvalues (very smooth kernels, whose embedding
/// is not positive definite) are clipped to zero, a small approximation.
fn circulant_scales(n: usize, cov_at_lag: impl Fn(usize) -> f64) -> Vec<f64> {
    let m = (2 * n.max(2) - 2).next_power_of_two();
    let mut row: Vec<(f64, f64)> = (0..m).map(|j| (cov_at_lag(j.min(m - j)), 0.0)).collect();
    fft(&mut row);
    row.iter()
        .map(|(eig, _)| (eig.max(0.0) / m as f64).sqrt())
        .collect()
}

/// The first `n` points of white noise coloured by `scales`.
fn circulant_draw(rng: &mut SampleRng, scales: &[f64], n: usize) -> Vec<f64> {
    let mut noise: Vec<(f64, f64)> = scales
        .iter()
        .map(|scale| {
            let (a, b): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            (scale * a, scale * b)
        })
        .collect();
    fft(&mut noise);
    noise.truncate(n);
    noise.into_iter().map(|(re, _)| re).collect()
}

/// In-place iterative radix-2 FFT (length must be a power of two).
fn fft(a: &mut [(f64, f64)]) {
    let n = a.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            a.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -2.0 * PI / len as f64;
        let (w_re, w_im) = (angle.cos(), angle.sin());
        for start in (0..n).step_by(len) {
            let (mut cr, mut ci) = (1.0, 0.0);
            for k in 0..len / 2 {
                let (ur, ui) = a[start + k];
                let (vr0, vi0) = a[start + k + len / 2];
                let (vr, vi) = (vr0 * cr - vi0 * ci, vr0 * ci + vi0 * cr);
                a[start + k] = (ur + vr, ui + vi);
                a[start + k + len / 2] = (ur - vr, ui - vi);
                (cr, ci) = (cr * w_re - ci * w_im, cr * w_im + ci * w_re);
            }
        }
        len <<= 1;
    }
}

/// The longest grid whose plans are kept: at this length the default bank's plans take about
/// 8 MB (256 KB per periodic kernel); longer grids compute each draw's plan afresh.
const MAX_PLANNED_LENGTH: usize = 1 << 14;

/// The bank's parametric families (linear, RBF, rational quadratic, white) and settings of each.
const FAMILIES: usize = 4;
const SETTINGS: usize = 3;

/// Settings of the parametric families' kernels, in bank order.
const LINEAR_SIGMA0: [f64; SETTINGS] = [0.0, 1.0, 10.0];
const RBF_LENGTHS: [f64; SETTINGS] = [0.1, 1.0, 10.0];
const RQ_ALPHAS: [f64; SETTINGS] = [0.1, 1.0, 10.0];
const WHITE_LEVELS: [f64; SETTINGS] = [0.1, 1.0, 2.0];

pub struct KernelSynth {
    cfg: KernelSynthConfig,
    /// The grid length `plans` are for.
    len: usize,
    /// One plan per kernel of the bank, for grids of `len` points (empty above
    /// MAX_PLANNED_LENGTH).
    plans: Vec<Plan>,
}

impl KernelSynth {
    /// A sampler whose draws of `len` points reuse the bank's plans; other lengths work too,
    /// computing each plan per draw.
    pub fn new(cfg: KernelSynthConfig, len: usize) -> Self {
        let mut synth = KernelSynth {
            cfg,
            len,
            plans: Vec::new(),
        };
        if len <= MAX_PLANNED_LENGTH {
            synth.plans = (0..synth.bank_size())
                .map(|k| synth.kernel(k, len).plan(len))
                .collect();
        }
        synth
    }

    /// The bank: every periodic kernel, each parametric family's settings, a constant.
    fn bank_size(&self) -> usize {
        self.cfg.periods.len() + FAMILIES * SETTINGS + 1
    }

    /// Kernel `k` of the bank, on a grid of `len` points.
    fn kernel(&self, k: usize, len: usize) -> Kernel {
        let n_periodic = self.cfg.periods.len();
        if k < n_periodic {
            return Kernel::Periodic(self.cfg.periods[k] / len as f64);
        }
        let (family, setting) = ((k - n_periodic) / SETTINGS, (k - n_periodic) % SETTINGS);
        match family {
            0 => Kernel::Linear(LINEAR_SIGMA0[setting]),
            1 => Kernel::Rbf(RBF_LENGTHS[setting]),
            2 => Kernel::RationalQuadratic(RQ_ALPHAS[setting]),
            3 => Kernel::White(WHITE_LEVELS[setting]),
            _ => Kernel::Constant,
        }
    }

    /// A uniform kernel family of the bank (every periodic kernel counts as one), then one of
    /// its settings: the index of a kernel in the bank.
    fn random_kernel(&self, rng: &mut SampleRng) -> usize {
        let n_periodic = self.cfg.periods.len();
        // As many slots as kernels, each family's SETTINGS slots then choosing one setting.
        let k = rng.random_range(0..self.bank_size());
        if k < n_periodic {
            return k;
        }
        let family = (k - n_periodic) / SETTINGS;
        if family < FAMILIES {
            n_periodic + SETTINGS * family + rng.random_range(0..SETTINGS)
        } else {
            n_periodic + SETTINGS * FAMILIES
        }
    }

    fn draw(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let k = self.random_kernel(rng);
        match self.plans.get(k) {
            Some(plan) if len == self.len => plan.draw(rng),
            _ => self.kernel(k, len).plan(len).draw(rng),
        }
    }
}

impl Excitation for KernelSynth {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let n_kernels = rng.random_range(1..=self.cfg.max_kernels);
        let mut out = self.draw(rng, len);
        for _ in 1..n_kernels {
            let add = rng.random_bool(0.5);
            let draw = self.draw(rng, len);
            for (o, d) in out.iter_mut().zip(&draw) {
                *o = if add { *o + d } else { *o * d };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn fft_matches_the_direct_dft() {
        let x: Vec<(f64, f64)> = (0..8)
            .map(|i| ((i as f64).sin(), (i as f64 * 0.3).cos()))
            .collect();
        let mut fast = x.clone();
        fft(&mut fast);
        for (k, f) in fast.iter().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for (j, (xr, xi)) in x.iter().enumerate() {
                let a = -2.0 * PI * (j * k) as f64 / 8.0;
                re += xr * a.cos() - xi * a.sin();
                im += xr * a.sin() + xi * a.cos();
            }
            assert!((f.0 - re).abs() < 1e-12 && (f.1 - im).abs() < 1e-12);
        }
    }

    #[test]
    fn the_periodic_recurrence_matches_one_sincos_per_harmonic() {
        let (n, step, period) = (256, 1.0 / 255.0, 7.0 / 256.0);
        let got = Kernel::Periodic(period).draw(&mut sample_rng(21, 0), n);
        // The same coefficients, drawn in the same order, summed term by term.
        let mut rng = sample_rng(21, 0);
        let terms: Vec<(f64, f64, f64)> = BESSEL_I_AT_1
            .iter()
            .enumerate()
            .map(|(k, i_k)| {
                let w = (if k == 0 { 1.0 } else { 2.0 } * i_k / std::f64::consts::E).sqrt();
                (w, rng.sample(StandardNormal), rng.sample(StandardNormal))
            })
            .collect();
        for (i, g) in got.iter().enumerate() {
            let phase = 2.0 * PI * i as f64 * step / period;
            let want: f64 = terms
                .iter()
                .enumerate()
                .map(|(k, (w, a, b))| {
                    let arg = k as f64 * phase;
                    w * (a * arg.cos() + if k == 0 { 0.0 } else { b * arg.sin() })
                })
                .sum();
            assert!((g - want).abs() < 1e-12, "point {i}: {g} vs {want}");
        }
    }

    /// Empirical covariance of `draws` at (0, 0) and (0, lag).
    fn empirical(kernel: Kernel, n: usize, lag: usize, draws: usize) -> (f64, f64) {
        let mut rng = sample_rng(13, 0);
        let (mut var, mut cov) = (0.0, 0.0);
        for _ in 0..draws {
            let x = kernel.draw(&mut rng, n);
            var += x[n / 2] * x[n / 2];
            cov += x[n / 2] * x[n / 2 + lag];
        }
        (var / draws as f64, cov / draws as f64)
    }

    #[test]
    fn stationary_draws_have_the_kernel_covariance() {
        let n = 256;
        let step = 1.0 / (n - 1) as f64;
        for kernel in [
            Kernel::Rbf(0.1),
            Kernel::RationalQuadratic(1.0),
            Kernel::Periodic(24.0 / 256.0),
        ] {
            let lag = 10;
            let (var, cov) = empirical(kernel, n, lag, 6000);
            assert!((var - 1.0).abs() < 0.06, "{kernel:?}: var {var}");
            let want = kernel.at_lag(lag as f64 * step);
            assert!((cov - want).abs() < 0.06, "{kernel:?}: cov {cov} vs {want}");
        }
    }

    #[test]
    fn products_of_independent_draws_have_the_product_covariance() {
        let n = 128;
        let step = 1.0 / (n - 1) as f64;
        let (a, b) = (Kernel::Rbf(0.1), Kernel::Periodic(0.2));
        let mut rng = sample_rng(14, 0);
        let (lag, draws) = (6, 8000);
        let mut cov = 0.0;
        for _ in 0..draws {
            let x: Vec<f64> = a
                .draw(&mut rng, n)
                .iter()
                .zip(b.draw(&mut rng, n))
                .map(|(p, q)| p * q)
                .collect();
            cov += x[n / 2] * x[n / 2 + lag];
        }
        let want = a.at_lag(lag as f64 * step) * b.at_lag(lag as f64 * step);
        assert!(
            (cov / draws as f64 - want).abs() < 0.06,
            "{} vs {want}",
            cov / draws as f64
        );
    }

    #[test]
    fn planned_draws_equal_draws_planned_afresh() {
        let planned = KernelSynth::new(KernelSynthConfig::default(), 256);
        let unplanned = KernelSynth::new(KernelSynthConfig::default(), 100);
        let (mut a, mut b) = (sample_rng(16, 0), sample_rng(16, 0));
        for _ in 0..200 {
            let (x, y) = (planned.sample(&mut a, 256), unplanned.sample(&mut b, 256));
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }

    #[test]
    fn long_series_are_finite() {
        let ks = KernelSynth::new(KernelSynthConfig::default(), 256);
        let mut rng = sample_rng(15, 0);
        for _ in 0..20 {
            let x = ks.sample(&mut rng, 4096);
            assert_eq!(x.len(), 4096);
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }
}
