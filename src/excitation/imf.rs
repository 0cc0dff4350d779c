//! Intrinsic-mode-function synthesis: a sum of oscillatory modes (tones and chirps, then
//! sine, cosine, AM or sawtooth "choice" modes), with optional localised envelopes and trends,
//! wavelet-like bursts, noise proportional to the signal's RMS, and an RMS cap.

use super::Excitation;
use crate::checks::{check_count, check_prob, check_range};
use crate::error::Result;
use crate::rng::{uniform, SampleRng};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImfConfig {
    pub base_modes: [usize; 2],
    pub choice_modes: [usize; 2],
    pub amplitude: [f64; 2],
    /// Cycles over the whole series.
    pub frequency: [f64; 2],
    pub chirp_prob: f64,
    pub chirp_rate: [f64; 2],
    pub envelope_prob: f64,
    pub envelope_width: [f64; 2],
    pub trend_prob: f64,
    pub trend_strength: [f64; 2],
    pub wavelets: [usize; 2],
    pub wavelet_amplitude: [f64; 2],
    /// Noise standard deviation as a fraction of the signal RMS.
    pub noise_level: f64,
    /// The RMS is scaled down to this when exceeded.
    pub max_rms: f64,
}

impl Default for ImfConfig {
    fn default() -> Self {
        ImfConfig {
            base_modes: [2, 4],
            choice_modes: [1, 5],
            amplitude: [0.01, 10.0],
            frequency: [0.01, 8.0],
            chirp_prob: 0.25,
            chirp_rate: [-6.0, 6.0],
            envelope_prob: 0.4,
            envelope_width: [0.05, 0.35],
            trend_prob: 0.35,
            trend_strength: [0.3, 1.5],
            wavelets: [0, 3],
            wavelet_amplitude: [0.2, 2.0],
            noise_level: 0.1,
            max_rms: 32.0,
        }
    }
}

impl ImfConfig {
    pub fn validate(&self) -> Result<()> {
        let c = |n: &str, r: [f64; 2], min: f64| {
            check_range(&format!("excitation.imf.{n}"), r[0], r[1], min)
        };
        let u = |r: [usize; 2]| [r[0] as f64, r[1] as f64];
        for (name, r) in [
            ("base_modes", self.base_modes),
            ("choice_modes", self.choice_modes),
            ("wavelets", self.wavelets),
        ] {
            check_count(&format!("excitation.imf.{name}[1]"), r[1], 0, 64)?;
        }
        c("base_modes", u(self.base_modes), 0.0)?;
        c("choice_modes", u(self.choice_modes), 0.0)?;
        c("wavelets", u(self.wavelets), 0.0)?;
        c("amplitude", self.amplitude, 0.0)?;
        c("frequency", self.frequency, 0.0)?;
        c("chirp_rate", self.chirp_rate, f64::MIN)?;
        c("envelope_width", self.envelope_width, 1e-3)?;
        c("trend_strength", self.trend_strength, 0.0)?;
        c("wavelet_amplitude", self.wavelet_amplitude, 0.0)?;
        check_prob("excitation.imf.chirp_prob", self.chirp_prob)?;
        check_prob("excitation.imf.envelope_prob", self.envelope_prob)?;
        check_prob("excitation.imf.trend_prob", self.trend_prob)?;
        c("noise_level", [self.noise_level, self.noise_level], 0.0)?;
        c("max_rms", [self.max_rms, self.max_rms], 1e-9)
    }
}

pub struct Imf {
    cfg: ImfConfig,
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

impl Imf {
    pub fn new(cfg: ImfConfig) -> Self {
        Imf { cfg }
    }

    fn envelope(&self, rng: &mut SampleRng, t: &[f64]) -> Vec<f64> {
        let center = rng.random_range(0.05..0.95);
        let width = uniform(rng, self.cfg.envelope_width);
        let right_width = width * rng.random_range(0.5..2.0);
        match rng.random_range(0..3) {
            0 => t
                .iter()
                .map(|&x| {
                    let w = if x < center { width } else { right_width };
                    (-0.5 * ((x - center) / w).powi(2)).exp()
                })
                .collect(),
            1 => t
                .iter()
                .map(|&x| 1.0 / ((x - center) / width).clamp(-50.0, 50.0).cosh())
                .collect(),
            _ => t
                .iter()
                .map(|&x| {
                    let d = (x - center).abs();
                    if d <= 0.5 * width {
                        1.0
                    } else if d <= width {
                        0.5 * (1.0 + (PI * (d - 0.5 * width) / (0.5 * width)).cos())
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    fn trend(&self, rng: &mut SampleRng, t: &[f64], scale: f64) -> Vec<f64> {
        let strength = uniform(rng, self.cfg.trend_strength) * scale;
        match rng.random_range(0..3) {
            0 => t.iter().map(|&x| strength * (x - 0.5)).collect(),
            1 => {
                let knot = rng.random_range(0.2..0.8);
                let (s1, s2) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
                t.iter()
                    .map(|&x| {
                        strength
                            * if x < knot {
                                s1 * x
                            } else {
                                s1 * knot + s2 * (x - knot)
                            }
                    })
                    .collect()
            }
            _ => {
                let curvature = rng.random_range(-2.0..2.0);
                t.iter()
                    .map(|&x| strength * (curvature * x * x + (1.0 - curvature) * x))
                    .collect()
            }
        }
    }

    fn oscillation(&self, rng: &mut SampleRng, t: &[f64], kind: u8) -> Vec<f64> {
        let amplitude = uniform(rng, self.cfg.amplitude);
        let f0 = uniform(rng, self.cfg.frequency);
        let phase = rng.random_range(0.0..2.0 * PI);
        let chirp = if rng.random_bool(self.cfg.chirp_prob) {
            uniform(rng, self.cfg.chirp_rate)
        } else {
            0.0
        };
        let am_rate = rng.random_range(0.1..2.0);
        t.iter()
            .map(|&x| {
                let arg = 2.0 * PI * (f0 * x + 0.5 * chirp * x * x) + phase;
                amplitude
                    * match kind {
                        0 => arg.sin(),
                        1 => arg.cos(),
                        // Amplitude modulation by a slow carrier.
                        2 => (1.0 + 0.5 * (2.0 * PI * am_rate * x).sin()) * arg.sin(),
                        // Sawtooth in [-1, 1].
                        _ => 2.0 * (arg / (2.0 * PI)).rem_euclid(1.0) - 1.0,
                    }
            })
            .collect()
    }
}

impl Excitation for Imf {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let t: Vec<f64> = (0..len)
            .map(|i| i as f64 / (len.max(2) - 1) as f64)
            .collect();
        let mut signal = vec![0.0; len];
        let n_base = rng.random_range(self.cfg.base_modes[0]..=self.cfg.base_modes[1]);
        let n_choice = rng.random_range(self.cfg.choice_modes[0]..=self.cfg.choice_modes[1]);
        for m in 0..n_base + n_choice {
            let kind = if m < n_base {
                rng.random_range(0..2)
            } else {
                rng.random_range(0..4)
            };
            let mut mode = self.oscillation(rng, &t, kind);
            if rng.random_bool(self.cfg.envelope_prob) {
                let env = self.envelope(rng, &t);
                mode.iter_mut().zip(&env).for_each(|(v, e)| *v *= e);
            }
            signal.iter_mut().zip(&mode).for_each(|(s, v)| *s += v);
        }
        let n_wavelets = rng.random_range(self.cfg.wavelets[0]..=self.cfg.wavelets[1]);
        for _ in 0..n_wavelets {
            // A Morlet-like burst: a Gaussian-windowed tone.
            let amp = uniform(rng, self.cfg.wavelet_amplitude);
            let center = rng.random_range(0.05..0.95);
            let width = rng.random_range(0.01..0.08);
            let freq = rng.random_range(5.0..40.0);
            for (s, &x) in signal.iter_mut().zip(&t) {
                let z = (x - center) / width;
                *s += amp * (-0.5 * z * z).exp() * (2.0 * PI * freq * (x - center)).cos();
            }
        }
        if rng.random_bool(self.cfg.trend_prob) {
            let tr = self.trend(rng, &t, rms(&signal).max(1e-3));
            signal.iter_mut().zip(&tr).for_each(|(s, v)| *s += v);
        }
        let sd = self.cfg.noise_level * rms(&signal);
        for s in &mut signal {
            *s += sd * rng.sample::<f64, _>(StandardNormal);
        }
        // Cap the RMS; scaling amplitudes by max/rms scales the RMS by the same factor.
        let r = rms(&signal);
        if r > self.cfg.max_rms {
            let k = self.cfg.max_rms / r;
            signal.iter_mut().for_each(|s| *s *= k);
        }
        signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn rms_never_exceeds_the_cap() {
        let cfg = ImfConfig {
            max_rms: 2.0,
            ..Default::default()
        };
        let imf = Imf::new(cfg);
        let mut rng = sample_rng(16, 0);
        for _ in 0..300 {
            let x = imf.sample(&mut rng, 256);
            assert!(rms(&x) <= 2.0 + 1e-9);
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }
}
