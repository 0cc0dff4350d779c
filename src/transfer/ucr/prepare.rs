//! Turning `.ts` cases into model input, the same way for every model:
//!
//! 1. missing values (`?`, `NaN`) are filled by linear interpolation between the nearest
//!    observed values of the same channel (constant extrapolation at the ends; an all-missing
//!    channel becomes zeros);
//! 2. every channel is resampled by linear interpolation to one length (the longest TRAIN
//!    case, unless the encoder asks for a fixed length), so unequal lengths are stretched, not
//!    padded (only `--native` completes a series' last patch with its last value);
//! 3. each channel of each case is z-normalised on its own (a constant channel becomes zeros),
//!    for every model but MiniRocket, which, as in its reference, sees the values themselves
//!    (its biases come from the data's own scale, and the channels' levels carry information).
//!
//! Each channel's level (its mean and the log of its standard deviation, what step 3
//! removes) is kept beside the values, for readouts that want it back.
//!
//! Channels are kept apart: a case of C channels is C univariate series, which every encoder
//! embeds independently and the classifier joins (MiniRocket, which sums random channel
//! subsets, is the exception; see `transfer`).

use super::ts::TsSplit;

/// Cases as one flat array `[n, channels, length]`.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub values: Vec<f32>,
    /// `[n, channels, 2]`: each channel's mean and log standard deviation, after steps 1-2.
    pub levels: Vec<f32>,
    pub labels: Vec<usize>,
    pub n: usize,
    pub channels: usize,
    pub length: usize,
}

impl Prepared {
    /// Each case's levels: per channel, its mean and log standard deviation.
    pub fn case_levels(&self) -> impl Iterator<Item = &[f32]> {
        self.levels.chunks(2 * self.channels)
    }

    /// The cases at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Prepared {
        let stride = self.channels * self.length;
        let level_stride = self.channels * 2;
        let mut values = Vec::with_capacity(indices.len() * stride);
        let mut levels = Vec::with_capacity(indices.len() * level_stride);
        for &i in indices {
            values.extend_from_slice(&self.values[i * stride..(i + 1) * stride]);
            levels.extend_from_slice(&self.levels[i * level_stride..(i + 1) * level_stride]);
        }
        Prepared {
            values,
            levels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n: indices.len(),
            channels: self.channels,
            length: self.length,
        }
    }
}

fn fill_missing(x: &mut [f64]) {
    let observed: Vec<usize> = (0..x.len()).filter(|&i| x[i].is_finite()).collect();
    let (Some(&first), Some(&last)) = (observed.first(), observed.last()) else {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    };
    let (head, tail) = (x[first], x[last]);
    x[..first].iter_mut().for_each(|v| *v = head);
    x[last + 1..].iter_mut().for_each(|v| *v = tail);
    for pair in observed.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        for i in a + 1..b {
            let w = (i - a) as f64 / (b - a) as f64;
            x[i] = x[a] * (1.0 - w) + x[b] * w;
        }
    }
}

/// Linear resampling of `x` onto `len` evenly spaced points spanning the same interval.
fn resample(x: &[f64], len: usize) -> Vec<f64> {
    match x.len() {
        0 => vec![0.0; len],
        1 => vec![x[0]; len],
        n if n == len => x.to_vec(),
        n => (0..len)
            .map(|i| {
                let pos = if len > 1 {
                    i as f64 * (n - 1) as f64 / (len - 1) as f64
                } else {
                    0.0
                };
                let k = (pos.floor() as usize).min(n - 2);
                let w = pos - k as f64;
                x[k] * (1.0 - w) + x[k + 1] * w
            })
            .collect(),
    }
}

/// The statistics of one channel that normalisation and its level both use.
#[derive(Clone, Copy)]
struct Moments {
    mean: f64,
    sd: f64,
    /// The largest magnitude: spreads below 1e-12 of it are rounding error.
    size: f64,
}

fn moments(x: &[f64]) -> Moments {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let size = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Moments { mean, sd, size }
}

/// A channel's mean and log standard deviation. A constant channel's spread is taken at the
/// rounding level of its values (below which `z_normalize` calls it constant), so the log stays
/// finite and scales with the data like every other channel's. An all-zero channel (or an
/// all-missing one, filled with zeros) has no scale; it gets the rounding level of 1, not
/// the ln of the smallest float, which would dominate its column's standardisation.
fn level(m: Moments) -> (f64, f64) {
    let floor = 1e-12 * if m.size > 0.0 { m.size } else { 1.0 };
    (m.mean, m.sd.max(floor).ln())
}

/// `x`, whose statistics are `m`, z-normalised in f64 with a threshold relative to the values'
/// own size, so that the result does not depend on the scale of the data: a set multiplied by
/// 1e-40 normalises like the original.
fn z_normalize(x: &mut [f64], m: Moments) {
    // Below this the spread is rounding error: the channel is constant.
    let constant = m.sd <= 1e-12 * m.size || m.sd == 0.0;
    for v in x.iter_mut() {
        *v = if constant { 0.0 } else { (*v - m.mean) / m.sd };
    }
}

/// The cases of `split`, filled and resampled to `length`, and (with `z_normalise`) each
/// channel of each case z-normalised.
pub fn prepare(split: &TsSplit, length: usize, z_normalise: bool) -> Prepared {
    let channels = split.n_channels();
    let mut values = Vec::with_capacity(split.series.len() * channels * length);
    let mut levels = Vec::with_capacity(split.series.len() * channels * 2);
    for case in &split.series {
        for channel in case {
            let mut c = channel.clone();
            fill_missing(&mut c);
            let mut c = resample(&c, length);
            let m = moments(&c);
            let (mean, log_sd) = level(m);
            levels.extend([mean as f32, log_sd as f32]);
            if z_normalise {
                z_normalize(&mut c, m);
            }
            values.extend(c.iter().map(|&v| v as f32));
        }
    }
    Prepared {
        values,
        levels,
        labels: split.labels.clone(),
        n: split.series.len(),
        channels,
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_the_mean_and_log_spread_that_normalisation_removes() {
        let (mean, log_sd) = level(moments(&[1.0, 3.0, 5.0, 7.0]));
        assert_eq!(mean, 4.0);
        assert!((log_sd - 5f64.sqrt().ln()).abs() < 1e-12);
        // Scaled data: the same mean times the scale, the log spread shifted by its log.
        let (m2, l2) = level(moments(&[1e-40, 3e-40, 5e-40, 7e-40]));
        assert!((m2 / 4e-40 - 1.0).abs() < 1e-12);
        assert!((l2 - log_sd - 1e-40f64.ln()).abs() < 1e-9);
        // Constant channels sit at their rounding level; all-zero ones at that of 1.
        assert!((level(moments(&[2.5; 8])).1 - (2.5e-12f64).ln()).abs() < 1e-9);
        assert!((level(moments(&[0.0; 8])).1 - (1e-12f64).ln()).abs() < 1e-9);
    }

    #[test]
    fn missing_values_are_interpolated() {
        let mut x = [f64::NAN, 1.0, f64::NAN, f64::NAN, 4.0, f64::NAN];
        fill_missing(&mut x);
        assert_eq!(x, [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
        let mut empty = [f64::NAN; 3];
        fill_missing(&mut empty);
        assert_eq!(empty, [0.0; 3]);
    }

    #[test]
    fn resampling_keeps_endpoints_and_lines() {
        let y = resample(&[0.0, 10.0], 6);
        assert_eq!(y, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let z = resample(&[0.0, 1.0, 2.0, 3.0, 4.0], 3);
        assert_eq!(z, vec![0.0, 2.0, 4.0]);
    }

    #[test]
    fn z_normalisation_is_per_channel_and_safe_for_constants() {
        let mut x = [1.0, 2.0, 3.0];
        let m = moments(&x);
        z_normalize(&mut x, m);
        assert!((x.iter().sum::<f64>()).abs() < 1e-12);
        assert!((x[2] - 1.224_744_871_391_589).abs() < 1e-12);
        let mut c = [5.0; 4];
        let m = moments(&c);
        z_normalize(&mut c, m);
        assert_eq!(c, [0.0; 4]);
        // Scale-free: the same shape at 1e-40 normalises to the same values.
        let mut tiny = [1e-40, 2e-40, 3e-40];
        let m = moments(&tiny);
        z_normalize(&mut tiny, m);
        assert!(
            tiny.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-9),
            "{tiny:?}"
        );
        let mut c = [0.1 + 0.2; 5];
        let m = moments(&c);
        z_normalize(&mut c, m);
        assert_eq!(c, [0.0; 5], "a constant stays constant despite rounding");
    }
}
