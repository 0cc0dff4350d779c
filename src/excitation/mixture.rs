//! Mixture distributions: k components, each Gaussian or uniform, with weights U(0,1)
//! normalised; component j fills a contiguous block of the series whose length is its
//! multinomial share, as in the reference.

use super::Excitation;
use crate::checks::{check_count, check_prob, check_range};
use crate::error::Result;
use crate::rng::SampleRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MixtureConfig {
    /// Number of components k ~ U{k_min..k_max}.
    pub k_min: usize,
    pub k_max: usize,
    /// Probability that a component is Gaussian rather than uniform.
    pub gaussian_prob: f64,
}

impl Default for MixtureConfig {
    fn default() -> Self {
        MixtureConfig {
            k_min: 3,
            k_max: 7,
            gaussian_prob: 0.5,
        }
    }
}

impl MixtureConfig {
    pub fn validate(&self) -> Result<()> {
        check_count("excitation.mixture.k_max", self.k_max, 1, 64)?;
        check_range(
            "excitation.mixture.k_min..k_max",
            self.k_min as f64,
            self.k_max as f64,
            1.0,
        )?;
        check_prob("excitation.mixture.gaussian_prob", self.gaussian_prob)
    }
}

pub struct Mixture {
    cfg: MixtureConfig,
}

impl Mixture {
    pub fn new(cfg: MixtureConfig) -> Self {
        Mixture { cfg }
    }

    /// Draws the normalised component weights (exposed for the statistics test).
    pub fn weights(&self, rng: &mut SampleRng) -> Vec<f64> {
        let k = rng.random_range(self.cfg.k_min..=self.cfg.k_max);
        let raw: Vec<f64> = (0..k)
            .map(|_| rng.random::<f64>() + f64::MIN_POSITIVE)
            .collect();
        let total: f64 = raw.iter().sum();
        raw.into_iter().map(|w| w / total).collect()
    }
}

/// Multinomial(n, p) by sequential binomials, so the counts sum to n exactly.
fn multinomial(rng: &mut SampleRng, n: usize, p: &[f64]) -> Vec<usize> {
    let mut left = n;
    let mut mass = 1.0;
    let mut out = Vec::with_capacity(p.len());
    for (j, &pj) in p.iter().enumerate() {
        if j + 1 == p.len() {
            out.push(left);
            break;
        }
        let q = (pj / mass).clamp(0.0, 1.0);
        let c = rand_distr::Binomial::new(left as u64, q)
            .map(|b| b.sample(rng) as usize)
            .unwrap_or(0);
        out.push(c);
        left -= c;
        mass -= pj;
    }
    out
}

impl Excitation for Mixture {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64> {
        let weights = self.weights(rng);
        let counts = multinomial(rng, len, &weights);
        let mut out = Vec::with_capacity(len);
        for count in counts {
            let mean: f64 = rng.sample(StandardNormal);
            let var: f64 = rng.random();
            let sd = var.sqrt();
            if rng.random_bool(self.cfg.gaussian_prob) {
                out.extend((0..count).map(|_| mean + sd * rng.sample::<f64, _>(StandardNormal)));
            } else {
                out.extend((0..count).map(|_| mean + sd * rng.random_range(-1.0..1.0)));
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
    fn weights_are_a_distribution_with_k_in_range() {
        let m = Mixture::new(MixtureConfig::default());
        let mut rng = sample_rng(5, 0);
        let mut mean_first = 0.0;
        let n = 4000;
        for _ in 0..n {
            let w = m.weights(&mut rng);
            assert!((3..=7).contains(&w.len()));
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(w.iter().all(|x| *x > 0.0));
            mean_first += w[0] * w.len() as f64;
        }
        // Exchangeable weights: E[w_0 · k] = 1.
        mean_first /= n as f64;
        assert!((mean_first - 1.0).abs() < 0.05, "{mean_first}");
    }

    #[test]
    fn multinomial_counts_sum_to_n_and_track_p() {
        let mut rng = sample_rng(6, 0);
        let p = [0.2, 0.5, 0.3];
        let mut totals = [0usize; 3];
        for _ in 0..2000 {
            let c = multinomial(&mut rng, 100, &p);
            assert_eq!(c.iter().sum::<usize>(), 100);
            for j in 0..3 {
                totals[j] += c[j];
            }
        }
        for j in 0..3 {
            let share = totals[j] as f64 / 200_000.0;
            assert!((share - p[j]).abs() < 0.01, "{j}: {share}");
        }
    }

    #[test]
    fn k_max_below_one_is_rejected() {
        let cfg = MixtureConfig {
            k_min: 0,
            k_max: 0,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("k_max"));
    }
}
