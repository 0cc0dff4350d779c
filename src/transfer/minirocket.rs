//! MiniRocket (Dempster, Schmidt and Webb, 2021): fixed convolutional features for a ridge
//! classifier, the practitioners' default for time-series classification.
//!
//! - 84 kernels of length 9: weight −1 everywhere and +2 at three of the nine positions (all
//!   C(9, 3) choices), so a kernel's output is −Σx + 3·(the three taps).
//! - Dilations 2^(e·k/31), k = 0..31, e = log2((L − 1) / 8), made integers and deduplicated;
//!   each kernel gets 119 features spread over them, so 84 · 119 = 9,996 features in all.
//! - Each feature is a proportion of positive values (PPV) of one kernel-dilation output
//!   against a bias, the bias being a quantile of that output on a random TRAIN case; the
//!   quantiles follow the golden-ratio sequence. "Same"-padded outputs alternate with
//!   outputs cut to the unpadded part, as in the reference.
//! - Multichannel cases (the reference's multivariate variant): every kernel-dilation pair
//!   sums its output over a random subset of 1–9 channels (size 2^U(0, log2(min(C, 9) + 1))).
//!
//! Every random choice comes from the seed's own stream, so fitting is deterministic; it
//! draws other random cases and channel subsets than aeon's, and computes in f32 where the
//! reference mixes f32 and f64, so results differ from aeon's in those details.

use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand::seq::index::sample;
use rand::Rng;
use rayon::prelude::*;

const KERNEL_LENGTH: usize = 9;
const FEATURES: usize = 10_000;
const MAX_DILATIONS: usize = 32;

/// The (three) positions of weight +2 of each of the 84 kernels, in lexicographic order.
fn kernels() -> Vec<[usize; 3]> {
    let mut out = Vec::with_capacity(84);
    for a in 0..KERNEL_LENGTH {
        for b in a + 1..KERNEL_LENGTH {
            for c in b + 1..KERNEL_LENGTH {
                out.push([a, b, c]);
            }
        }
    }
    out
}

/// The dilations for series of `length`, with how many features each kernel gets at each.
fn dilations(length: usize, kernels: usize) -> Vec<(usize, usize)> {
    let per_kernel = FEATURES / kernels;
    let count = per_kernel.min(MAX_DILATIONS);
    let multiplier = per_kernel as f64 / count as f64;
    let max_exponent = ((length - 1) as f64 / (KERNEL_LENGTH - 1) as f64).log2();
    // numpy's linspace: k · step, with the last point exactly the end.
    let step = max_exponent / (count - 1) as f64;
    let mut found: Vec<(usize, usize)> = Vec::new();
    for k in 0..count {
        let exponent = if k + 1 == count {
            max_exponent
        } else {
            k as f64 * step
        };
        let d = 2f64.powf(exponent) as usize;
        match found.last_mut() {
            Some((last, n)) if *last == d => *n += 1,
            _ => found.push((d, 1)),
        }
    }
    let mut plan: Vec<(usize, usize)> = found
        .iter()
        .map(|&(d, n)| (d, (n as f64 * multiplier) as usize))
        .collect();
    let mut remainder = per_kernel - plan.iter().map(|p| p.1).sum::<usize>();
    let mut i = 0;
    while remainder > 0 {
        plan[i].1 += 1;
        remainder -= 1;
        i = (i + 1) % plan.len();
    }
    plan
}

/// (i · φ) mod 1 for i = 1..=n, φ the golden ratio: well-spread quantile levels (rounded
/// to f32, as the reference stores them).
fn quantile_levels(n: usize) -> Vec<f64> {
    let phi = (5f64.sqrt() + 1.0) / 2.0;
    (1..=n)
        .map(|i| ((i as f64 * phi) % 1.0) as f32 as f64)
        .collect()
}

/// The `q`-quantile of `sorted` with linear interpolation (numpy's default).
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    (sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64)) as f32
}

/// A fitted MiniRocket transform.
#[derive(Clone, Debug)]
pub struct MiniRocket {
    length: usize,
    channels: usize,
    kernels: Vec<[usize; 3]>,
    /// (dilation, features per kernel at it)
    dilations: Vec<(usize, usize)>,
    /// The channels summed by each (dilation, kernel) pair, in that order.
    channel_sets: Vec<Vec<usize>>,
    biases: Vec<f32>,
}

/// The 9 shifted copies of one channel at `dilation` with zero padding: tap k holds
/// x[t + (k − 4)·dilation].
fn taps(x: &[f32], dilation: usize) -> Vec<Vec<f32>> {
    let len = x.len() as isize;
    (0..KERNEL_LENGTH)
        .map(|k| {
            let shift = (k as isize - 4) * dilation as isize;
            (0..len)
                .map(|t| {
                    let s = t + shift;
                    if (0..len).contains(&s) {
                        x[s as usize]
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

/// Every case has `channels` channels of `length` points.
fn check_shapes(cases: &[Vec<Vec<f32>>], channels: usize, length: usize) -> Result<()> {
    match cases
        .iter()
        .find(|c| c.len() != channels || c.iter().any(|ch| ch.len() != length))
    {
        Some(bad) => Err(Error::Config(format!(
            "MiniRocket needs cases of {channels} channel(s) of length {length}; got {} of length {}",
            bad.len(),
            bad.first().map_or(0, Vec::len)
        ))),
        None => Ok(()),
    }
}

impl MiniRocket {
    /// Fits dilations, channel subsets and biases on `train`, cases [n][channel][time] of
    /// one common length (at least 9).
    pub fn fit(train: &[Vec<Vec<f32>>], rng: &mut SampleRng) -> Result<MiniRocket> {
        let first = train
            .first()
            .ok_or_else(|| Error::Config("MiniRocket needs at least one TRAIN case".into()))?;
        let (channels, length) = (first.len(), first.first().map_or(0, Vec::len));
        check_shapes(train, channels, length)?;
        if length < KERNEL_LENGTH {
            return Err(Error::Config(format!(
                "MiniRocket needs series of at least {KERNEL_LENGTH} points; these have {length}"
            )));
        }
        let kernels = kernels();
        let dilations = dilations(length, kernels.len());
        let per_kernel: usize = dilations.iter().map(|d| d.1).sum();
        let levels = quantile_levels(kernels.len() * per_kernel);
        let max_exponent = ((channels.min(9) + 1) as f64).log2();
        let channel_sets: Vec<Vec<usize>> = (0..dilations.len() * kernels.len())
            .map(|_| {
                let size =
                    (2f64.powf(rng.random_range(0.0..max_exponent)) as usize).clamp(1, channels);
                sample(rng, channels, size).into_vec()
            })
            .collect();
        let mut model = MiniRocket {
            length,
            channels,
            kernels,
            dilations,
            channel_sets,
            biases: Vec::new(),
        };
        let mut biases = Vec::with_capacity(levels.len());
        for (di, &(dilation, count)) in model.dilations.iter().enumerate() {
            for ki in 0..model.kernels.len() {
                let case = &train[rng.random_range(0..train.len())];
                let case_taps: Vec<Vec<Vec<f32>>> =
                    case.iter().map(|x| taps(x, dilation)).collect();
                let mut output = model.output(&case_taps, di, ki);
                output.sort_by(f32::total_cmp);
                let start = biases.len();
                biases.extend(
                    levels[start..start + count]
                        .iter()
                        .map(|&q| quantile(&output, q)),
                );
            }
        }
        model.biases = biases;
        Ok(model)
    }

    pub fn feature_count(&self) -> usize {
        self.biases.len()
    }

    /// The "same"-padded output of kernel `ki` at dilation index `di`, summed over the pair's
    /// channels; `taps[c]` are channel c's taps at that dilation.
    fn output(&self, taps: &[Vec<Vec<f32>>], di: usize, ki: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.length];
        for &c in &self.channel_sets[di * self.kernels.len() + ki] {
            self.add_channel(&taps[c], ki, &mut out);
        }
        out
    }

    /// out += −Σ taps + 3·(the kernel's three taps).
    fn add_channel(&self, taps: &[Vec<f32>], ki: usize, out: &mut [f32]) {
        let [a, b, c] = self.kernels[ki];
        for (t, o) in out.iter_mut().enumerate() {
            let all: f32 = taps.iter().map(|tap| tap[t]).sum();
            *o += 3.0 * (taps[a][t] + taps[b][t] + taps[c][t]) - all;
        }
    }

    /// The features of each case, [n][feature_count].
    pub fn transform(&self, cases: &[Vec<Vec<f32>>]) -> Result<Vec<Vec<f32>>> {
        check_shapes(cases, self.channels, self.length)?;
        Ok(cases.par_iter().map(|case| self.features(case)).collect())
    }

    fn features(&self, case: &[Vec<f32>]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.biases.len());
        for (di, &(dilation, count)) in self.dilations.iter().enumerate() {
            let taps: Vec<Vec<Vec<f32>>> = case.iter().map(|x| taps(x, dilation)).collect();
            let padding = (KERNEL_LENGTH - 1) * dilation / 2;
            for ki in 0..self.kernels.len() {
                let output = self.output(&taps, di, ki);
                // Alternate pairs use the whole padded output or its unpadded middle.
                let span = if (di + ki) % 2 == 0 {
                    &output[..]
                } else {
                    &output[padding..self.length - padding]
                };
                let start = out.len();
                for &bias in &self.biases[start..start + count] {
                    let positive = span.iter().filter(|&&v| v > bias).count();
                    out.push(positive as f32 / span.len() as f32);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    fn cases(n: usize, channels: usize, length: usize, seed: u64) -> Vec<Vec<Vec<f32>>> {
        let mut rng = sample_rng(seed, 1);
        (0..n)
            .map(|_| {
                (0..channels)
                    .map(|_| (0..length).map(|_| rng.random_range(-1.0..1.0)).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_kernels_and_dilations_are_the_references() {
        assert_eq!(kernels().len(), 84);
        // 119 features per kernel at every length; dilations from 1 up to (L − 1) / 8.
        for length in [9, 24, 150, 1000] {
            let plan = dilations(length, 84);
            assert_eq!(
                plan.iter().map(|p| p.1).sum::<usize>(),
                119,
                "length {length}"
            );
            assert_eq!(plan[0].0, 1);
            assert!(plan.last().unwrap().0 <= (length - 1) / 8);
        }
        // The reference's dilations for length 150 (numpy: unique(int32(logspace(0, log2(149/8), 32, base=2)))).
        let d150: Vec<usize> = dilations(150, 84).iter().map(|p| p.0).collect();
        assert_eq!(
            d150,
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 18]
        );
    }

    #[test]
    fn feature_count_and_determinism() {
        for channels in [1, 3] {
            let train = cases(6, channels, 40, 2);
            let a = MiniRocket::fit(&train, &mut sample_rng(5, 0)).unwrap();
            assert_eq!(a.feature_count(), 9_996);
            let fa = a.transform(&train).unwrap();
            assert_eq!((fa.len(), fa[0].len()), (6, 9_996));
            assert!(fa.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
            let b = MiniRocket::fit(&train, &mut sample_rng(5, 0)).unwrap();
            assert_eq!(b.transform(&train).unwrap(), fa, "same seed, same features");
            let c = MiniRocket::fit(&train, &mut sample_rng(6, 0)).unwrap();
            assert_ne!(
                c.transform(&train).unwrap(),
                fa,
                "another seed, other biases"
            );
        }
    }

    #[test]
    fn short_series_and_mismatched_cases_are_errors() {
        let err = MiniRocket::fit(&cases(3, 1, 8, 1), &mut sample_rng(1, 0)).unwrap_err();
        assert!(err.to_string().contains("at least 9 points"), "{err}");
        let model = MiniRocket::fit(&cases(3, 1, 20, 1), &mut sample_rng(1, 0)).unwrap();
        assert!(model.transform(&cases(1, 2, 20, 1)).is_err());
        let mut ragged = cases(3, 1, 20, 1);
        ragged[2][0].truncate(15);
        assert!(MiniRocket::fit(&ragged, &mut sample_rng(1, 0)).is_err());
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let sorted = [0.0, 1.0, 2.0, 10.0];
        assert_eq!(quantile(&sorted, 0.0), 0.0);
        assert_eq!(quantile(&sorted, 0.5), 1.5);
        assert_eq!(quantile(&sorted, 1.0), 10.0);
        assert!((quantile_levels(2)[0] - 0.618_034).abs() < 1e-6);
    }
}
