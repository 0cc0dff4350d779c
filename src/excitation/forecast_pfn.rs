//! ForecastPFN-style series: trend × seasonality × Weibull noise, at a random sampling
//! frequency, optionally blended into a second such series through a sigmoid transition.
//!
//! Calendar features (minute, hour, weekday, day of month, month) come from a simple
//! arithmetic calendar (365.25-day years, 12 equal months) instead of pandas dates: the same
//! seasonal structure, at a fraction of the cost and with no wall-clock dependence. Each
//! Fourier series is evaluated once per distinct calendar value, not once per point. Unlike
//! the reference, the drawn noise is applied.

use super::Excitation;
use crate::checks::check_prob;
use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastPfnConfig {
    /// Probability of blending two series with a sigmoid transition.
    pub transition_prob: f64,
    /// Whether the trend includes an exponential factor.
    pub exp_trend: bool,
    /// Latest start, in days after the calendar origin.
    pub max_start_day: f64,
}

impl Default for ForecastPfnConfig {
    fn default() -> Self {
        ForecastPfnConfig {
            transition_prob: 1.0,
            exp_trend: true,
            max_start_day: 50_000.0,
        }
    }
}

impl ForecastPfnConfig {
    pub fn validate(&self) -> Result<()> {
        check_prob(
            "excitation.forecast_pfn.transition_prob",
            self.transition_prob,
        )?;
        if !(self.max_start_day.is_finite() && self.max_start_day >= 0.0) {
            return Err(Error::Config(
                "excitation.forecast_pfn.max_start_day must be finite and >= 0".into(),
            ));
        }
        Ok(())
    }
}

/// Sampling frequencies and their step in days: minute, hour, day, week, month.
const FREQUENCIES: [f64; 5] = [1.0 / 1440.0, 1.0 / 24.0, 1.0, 7.0, 30.0];

const DAYS_PER_YEAR: f64 = 365.25;
const DAYS_PER_MONTH: f64 = DAYS_PER_YEAR / 12.0;

pub struct ForecastPfn {
    cfg: ForecastPfnConfig,
    minute: Calendar,
    hour: Calendar,
    year: Calendar,
    month: Calendar,
    week: Calendar,
}

/// Calendar features are small whole numbers, below this.
const FEATURE_VALUES: usize = 64;

/// One seasonal factor's calendar feature and its Fourier basis.
struct Calendar {
    /// The feature of a day number: a whole number below FEATURE_VALUES.
    feature: fn(f64) -> f64,
    harmonics: usize,
    /// (sin, cos) of harmonic h + 1 at feature value f, at `f * harmonics + h`: the same for
    /// every series, so computed once (these sines were a tenth of s2-multidim's time).
    basis: Vec<(f64, f64)>,
}

impl Calendar {
    fn new(harmonics: usize, period: f64, feature: fn(f64) -> f64) -> Self {
        let basis = (0..FEATURE_VALUES)
            .flat_map(|f| {
                (0..harmonics).map(move |h| {
                    let arg = 2.0 * PI * (h + 1) as f64 * f as f64 / period;
                    (arg.sin(), arg.cos())
                })
            })
            .collect();
        Calendar {
            feature,
            harmonics,
            basis,
        }
    }
}

/// Seasonal amplitudes per component; zero switches a component off.
#[derive(Default)]
struct Seasonality {
    minute: f64,
    hour: f64,
    week: f64,
    month: f64,
    year: f64,
}

impl ForecastPfn {
    pub fn new(cfg: ForecastPfnConfig) -> Self {
        ForecastPfn {
            cfg,
            minute: Calendar::new(10, 60.0, |d| int_mod(floor(d * 1440.0), 60)),
            hour: Calendar::new(10, 24.0, |d| int_mod(floor(d * 24.0), 24)),
            year: Calendar::new(6, 12.0, |d| {
                floor(rem_euclid(d, DAYS_PER_YEAR) / DAYS_PER_MONTH) + 1.0
            }),
            month: Calendar::new(10, 30.5, |d| floor(rem_euclid(d, DAYS_PER_MONTH)) + 1.0),
            week: Calendar::new(4, 7.0, |d| int_mod(floor(d), 7)),
        }
    }

    fn one_series(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let freq = rng.random_range(0..FREQUENCIES.len());
        let step = FREQUENCIES[freq];
        let mut s = Seasonality::default();
        match freq {
            0 => (s.minute, s.hour) = (rng.random_range(0.0..1.0), rng.random_range(0.0..0.2)),
            1 => (s.minute, s.hour) = (rng.random_range(0.0..0.2), rng.random_range(0.0..1.0)),
            2 => (s.week, s.month) = (rng.random_range(0.0..1.0), rng.random_range(0.0..0.2)),
            3 => (s.month, s.year) = (rng.random_range(0.0..0.3), rng.random_range(0.0..0.3)),
            _ => (s.week, s.year) = (rng.random_range(0.0..0.1), rng.random_range(0.0..0.5)),
        }
        let normal = |rng: &mut SampleRng, mean: f64, sd: f64| {
            Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
        };
        let linear = normal(rng, 0.0, 0.01);
        // The reference raises a base N(1, 0.001/step) to a power, which is NaN for the negative
        // bases that sub-daily rates draw; a growth rate in log space has the same scale.
        let growth_rate = normal(rng, 0.0, 0.001 / step);
        let linear_offset = normal(rng, -0.1, 0.5);
        // Offsets are fractions of the series span. The reference widens the exponential one
        // to N(-0.1, 0.5/step), hundreds of spans at sub-daily rates, which overflows exp.
        let exp_offset = normal(rng, -0.1, 0.5);
        let weibull_k = rng.random_range(1.0..5.0);
        let noise_scale = noise_scale(rng);
        let start = rng.random_range(0.0..=self.cfg.max_start_day);

        let days: Vec<f64> = (0..len).map(|i| start + i as f64 * step).collect();
        // As in the reference, trends advance in whole days.
        let elapsed: Vec<f64> = days.iter().map(|d| floor(*d) - floor(start)).collect();
        let span = *elapsed.last().unwrap_or(&0.0);

        // Each seasonal factor is 1 + amplitude · (normalised Fourier series of a calendar
        // feature); the components multiply.
        let mut seasonal = vec![1.0; len];
        for (amplitude, calendar) in [
            (s.minute, &self.minute),
            (s.hour, &self.hour),
            (s.year, &self.year),
            (s.month, &self.month),
            (s.week, &self.week),
        ] {
            if amplitude <= 0.0 {
                continue; // switched off
            }
            let harmonics = calendar.harmonics;
            let (sin_c, cos_c) = fourier_coefficients(rng, harmonics);
            // Tabulate the wave lazily, per feature value.
            let mut table = [f64::NAN; FEATURE_VALUES];
            for (v, d) in seasonal.iter_mut().zip(&days) {
                let f = (calendar.feature)(*d) as usize;
                let slot = &mut table[f];
                if slot.is_nan() {
                    let basis = &calendar.basis[f * harmonics..(f + 1) * harmonics];
                    *slot = (0..harmonics)
                        .map(|h| sin_c[h] * basis[h].0 + cos_c[h] * basis[h].1)
                        .sum();
                }
                *v *= 1.0 + amplitude * *slot;
            }
        }

        let weibull = weibull_with_unit_median(weibull_k);
        // Elapsed days repeat at sub-daily rates: the exponential is taken once per day.
        let mut growth = (f64::NAN, 0.0);
        (0..len)
            .map(|i| {
                let e = elapsed[i];
                let mut trend = 1.0 + (e - linear_offset * span) * linear;
                if self.cfg.exp_trend {
                    if e != growth.0 {
                        growth = (e, (growth_rate * (e - exp_offset * span)).exp());
                    }
                    trend *= growth.1;
                }
                let noise = 1.0 + noise_scale * (weibull.sample(rng) - 1.0);
                trend * seasonal[i] * noise
            })
            .collect()
    }
}

/// From +0 up to this, the fast paths of `floor` and `rem_euclid` are exact.
const SMALL: f64 = (1u64 << 40) as f64;

fn small(x: f64) -> bool {
    x.is_sign_positive() && x < SMALL
}

/// `x.floor()`, bit for bit. A baseline x86-64 build has no rounding instruction and calls a
/// software floor; for +0 <= x < 2^40 truncating to an integer is the same and much cheaper.
fn floor(x: f64) -> f64 {
    if small(x) {
        x as i64 as f64
    } else {
        x.floor()
    }
}

/// `x.rem_euclid(p)`, bit for bit, without the software fmod, for a period `p` > 1 of at most
/// 13 significant bits (365.25 and its twelfth have 11 and 9). For +0 <= x < 2^40, q = ⌊x/p⌋ is
/// the true quotient or one more (x/p rounded up to a whole number); q·p is exact (at most 53
/// bits), x − q·p is exact by Sterbenz's lemma (trivially for q = 0), and so is adding p back
/// to a negative remainder, since the true remainder is representable.
fn rem_euclid(x: f64, p: f64) -> f64 {
    if !small(x) {
        return x.rem_euclid(p);
    }
    let r = x - floor(x / p) * p;
    if r < 0.0 {
        r + p
    } else {
        r
    }
}

/// `x.rem_euclid(m)` for a whole number x below 2^53, in integers: exact, like the float
/// remainder, and without its slow software fmod.
fn int_mod(x: f64, m: i64) -> f64 {
    (x as i64).rem_euclid(m) as f64
}

/// Weibull(k) with its scale chosen so that the median is 1 (the noise is 1 + s·(w − 1)).
fn weibull_with_unit_median(k: f64) -> rand_distr::Weibull<f64> {
    let lambda = 1.0 / std::f64::consts::LN_2.powf(1.0 / k);
    rand_distr::Weibull::new(lambda, k).expect("k in [1, 5) gives a valid Weibull")
}

/// Noise scale: low 60% of the time, moderate 30%, high 10%.
fn noise_scale(rng: &mut SampleRng) -> f64 {
    let u: f64 = rng.random();
    if u <= 0.6 {
        rng.random_range(0.0..0.1)
    } else if u <= 0.9 {
        rng.random_range(0.2..0.4)
    } else {
        rng.random_range(0.6..0.8)
    }
}

/// Fourier coefficients a_k, b_k ~ N(0, 1/k), normalised to unit norm jointly.
fn fourier_coefficients(rng: &mut SampleRng, harmonics: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::with_capacity(harmonics);
    let mut b = Vec::with_capacity(harmonics);
    for h in 1..=harmonics {
        a.push(rng.sample::<f64, _>(StandardNormal) / h as f64);
        b.push(rng.sample::<f64, _>(StandardNormal) / h as f64);
    }
    let norm = (a.iter().chain(&b).map(|v| v * v).sum::<f64>())
        .sqrt()
        .max(1e-12);
    a.iter_mut().chain(b.iter_mut()).for_each(|v| *v /= norm);
    (a, b)
}

/// Sigmoid weights rising from 0.1 at 20% of the series to 0.9 at 80%.
fn transition_weights(len: usize) -> Vec<f64> {
    let (a, b) = (0.2 * len as f64, 0.8 * len as f64);
    let m = (a + b) / 2.0;
    let k = (0.1f64 / 0.9).ln() / (a - m);
    (1..=len)
        .map(|i| 1.0 / (1.0 + (-k * (i as f64 - m)).exp()))
        .collect()
}

impl Excitation for ForecastPfn {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let first = self.one_series(rng, len);
        if !rng.random_bool(self.cfg.transition_prob) {
            return first;
        }
        let second = self.one_series(rng, len);
        let w = transition_weights(len);
        (0..len)
            .map(|i| (1.0 - w[i]) * first[i] + w[i] * second[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn transition_weights_hit_their_anchors() {
        let w = transition_weights(1000);
        assert!((w[199] - 0.1).abs() < 1e-9);
        assert!((w[799] - 0.9).abs() < 1e-9);
    }

    #[test]
    fn calendar_arithmetic_matches_std_bit_for_bit() {
        let mut rng = sample_rng(14, 0);
        let multiples = (0..2000).map(|k| k as f64 * DAYS_PER_YEAR);
        let near = multiples.flat_map(|m| [m.next_down(), m, m.next_up()]);
        let random = (0..200_000).map(|_| rng.random_range(0.0..60_000.0));
        let extremes = [
            0.0,
            -0.0,
            -3.5,
            1e13,
            2.0f64.powi(40),
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        for x in near.chain(random).chain(extremes) {
            assert_eq!(floor(x).to_bits(), x.floor().to_bits(), "floor({x})");
            for p in [DAYS_PER_YEAR, DAYS_PER_MONTH] {
                let (got, want) = (rem_euclid(x, p), x.rem_euclid(p));
                assert_eq!(got.to_bits(), want.to_bits(), "{x} mod {p}");
            }
        }
    }

    #[test]
    fn noise_has_unit_median() {
        let mut rng = sample_rng(15, 0);
        for k in [1.0, 2.5, 4.9] {
            let w = weibull_with_unit_median(k);
            let mut draws: Vec<f64> = (0..20_001).map(|_| w.sample(&mut rng)).collect();
            draws.sort_by(f64::total_cmp);
            assert!(
                (draws[10_000] - 1.0).abs() < 0.03,
                "k = {k}: {}",
                draws[10_000]
            );
        }
    }

    #[test]
    fn series_are_finite_and_vary() {
        let f = ForecastPfn::new(ForecastPfnConfig::default());
        let mut rng = sample_rng(16, 0);
        for _ in 0..3000 {
            let x = f.sample(&mut rng, 256);
            assert!(x.iter().all(|v| v.is_finite()));
            assert!(crate::excitation::mean_std(&x).1 > 0.0);
        }
    }
}
