//! FEI (`kind = "fei"`): frequency-masked embedding inference, a non-contrastive objective,
//! on our patch transformer (the reference uses a 1-D ResNet).
//!
//! - A random share (up to `max_mask_ratio`) of each window's rFFT bins is zeroed; the
//!   target series is the inverse FFT of what is left.
//! - The mask is embedded as the sum of the masked bins' rows of a basis W, over
//!   sqrt(#masked).
//! - Target-embedding inference (TEI): an MLP of the series' embedding plus the mask
//!   embedding predicts the EMA encoder's embedding of the target series.
//! - Mask inference (MI): an MLP of the difference between the target's and the series'
//!   embeddings (the latter detached) predicts the mask embedding.
//! - The EMA rate rises from `momentum` towards 1 on a cosine over the run.
//!
//! Embeddings are the [CLS] states. Two choices differ from the reference, both against
//! collapse: TEI compares L2-normalised vectors (as BYOL does), and W is a fixed random
//! basis rather than a trained one (trained only through MI's target, W and the MI head
//! can shrink together to zero and carry no mask information).

use super::batch::PairBatch;
use super::momentum::{ema, PREFIX};
use super::objective::{Objective, Progress, Report};
use super::recipe::ModelRecipe;
use super::towers::l2_normalize;
use crate::checks::{check_count, check_prob};
use crate::error::Error;
use crate::model::{instance_norm, linear, params, Linear, SeriesEncoder};
use crate::ops::gelu;
use crate::rng::{uniform, SampleRng};
use crate::train::{block_gradients, constant_rows, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, IndexOp, Result, Tensor, Var, D};
use candle_nn::{Init, Module, VarBuilder, VarMap};
use rand::seq::index::sample;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FeiConfig {
    /// Each window masks a share of its rFFT bins drawn from (0, max_mask_ratio].
    pub max_mask_ratio: f64,
    /// The EMA rate at the start; it rises to 1 by the end of the run.
    pub momentum: f64,
    /// Hidden width of the two inference MLPs.
    pub predictor_dim: usize,
    pub tei_weight: f64,
    pub mi_weight: f64,
}

impl Default for FeiConfig {
    fn default() -> Self {
        FeiConfig {
            max_mask_ratio: 0.7,
            momentum: 0.995,
            predictor_dim: 256,
            tei_weight: 1.0,
            mi_weight: 1.0,
        }
    }
}

impl FeiConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_prob("objectives.max_mask_ratio", self.max_mask_ratio)?;
        check_prob("objectives.momentum", self.momentum)?;
        check_count("objectives.predictor_dim", self.predictor_dim, 1, 1 << 16)?;
        if self.max_mask_ratio == 0.0 {
            return Err(Error::Config(
                "objectives.max_mask_ratio must be > 0: with no bin masked there is nothing to infer".into(),
            ));
        }
        let weights = [self.tei_weight, self.mi_weight];
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) || weights.iter().sum::<f64>() == 0.0
        {
            return Err(Error::Config(
                "objectives: tei_weight and mi_weight must be finite and >= 0, and not both 0"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The EMA rate after `at`: `momentum` rising to 1 on a half cosine.
    fn momentum_at(&self, at: Progress) -> f64 {
        let cosine = ((std::f64::consts::PI * at.fraction()).cos() + 1.0) / 2.0;
        1.0 - (1.0 - self.momentum) * cosine
    }
}

/// The two losses; the spread across the batch of the EMA encoder's normalised embeddings
/// (mean over dimensions of the standard deviation: 0 is a collapsed encoder, about
/// 1/sqrt(d) a healthy one); and the EMA rate used after the step.
const COLUMNS: &[&str] = &["tei", "mi", "embedding_std", "ema_rate"];

/// Linear, GELU, Linear.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Mlp {
            fc1: linear(dim, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, dim, vb.pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }
}

/// One step's frequency-masked inputs: the windows and their targets (both
/// instance-normalised, [B, L]) and the masked bins as 0/1 [B, F].
pub struct FrequencyMasked {
    pub windows: Tensor,
    pub targets: Tensor,
    pub masked: Tensor,
}

/// The real FFT of one length and its inverse.
pub struct Spectrum {
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl Spectrum {
    pub fn new(length: usize) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        Spectrum {
            forward: planner.plan_fft_forward(length),
            inverse: planner.plan_fft_inverse(length),
        }
    }

    /// The number of rFFT bins, L/2 + 1.
    pub fn bins(&self) -> usize {
        self.forward.complex_len()
    }

    /// irfft(rfft(`x`) with the bins where `zeroed` is true set to 0), scaled so that no
    /// bin zeroed gives `x` back.
    pub fn without_bins(&self, x: &[f32], zeroed: &[bool]) -> Result<Vec<f32>> {
        let fail = |e: realfft::FftError| candle_core::Error::Msg(format!("FFT: {e}"));
        let mut input = x.to_vec();
        let mut spectrum = self.forward.make_output_vec();
        self.forward
            .process(&mut input, &mut spectrum)
            .map_err(fail)?;
        for (bin, &zero) in spectrum.iter_mut().zip(zeroed) {
            if zero {
                *bin = Complex::new(0.0, 0.0);
            }
        }
        // The inverse requires real DC and Nyquist bins; rounding may leave a trace.
        spectrum[0].im = 0.0;
        if x.len().is_multiple_of(2) {
            let last = spectrum.len() - 1;
            spectrum[last].im = 0.0;
        }
        let mut out = self.inverse.make_output_vec();
        self.inverse
            .process(&mut spectrum, &mut out)
            .map_err(fail)?;
        let scale = 1.0 / x.len() as f32;
        Ok(out.into_iter().map(|v| v * scale).collect())
    }
}

pub struct Fei {
    cfg: FeiConfig,
    online: VarMap,
    state: VarMap,
    series: SeriesEncoder,
    tei: Mlp,
    mi: Mlp,
    target: SeriesEncoder,
    basis: Var,
    spectrum: Spectrum,
}

impl Fei {
    pub fn new(model: &ModelRecipe, o: &FeiConfig, device: &Device) -> Result<Self> {
        let (online, state) = (VarMap::new(), VarMap::new());
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let d = model.series.transformer.d_model;
        let spectrum = Spectrum::new(model.series.length);
        let state_vb = VarBuilder::from_varmap(&state, DType::F32, device);
        state_vb.get_with_hints((spectrum.bins(), d), "mask_basis", Init::Const(0.0))?;
        Ok(Fei {
            series: SeriesEncoder::new(&model.series, vb.pp("series"))?,
            tei: Mlp::new(d, o.predictor_dim, vb.pp("tei"))?,
            mi: Mlp::new(d, o.predictor_dim, vb.pp("mi"))?,
            target: SeriesEncoder::new(&model.series, state_vb.pp(PREFIX).pp("series"))?,
            basis: params::var(&state, "mask_basis").expect("registered above"),
            cfg: o.clone(),
            spectrum,
            online,
            state,
        })
    }

    /// Draws each window's masked bins and computes its target series.
    pub fn mask_frequencies(
        &self,
        batch: &PairBatch,
        rng: &mut SampleRng,
    ) -> Result<FrequencyMasked> {
        let windows = instance_norm(&batch.series)?;
        let (b, l) = windows.dims2()?;
        let f = self.spectrum.bins();
        let (mut targets, mut masked) = (Vec::with_capacity(b * l), vec![0f32; b * f]);
        for (i, x) in windows.to_vec2::<f32>()?.iter().enumerate() {
            let share = uniform(rng, [0.0, self.cfg.max_mask_ratio]);
            let count = ((share * f as f64).round() as usize).clamp(1, f);
            let mut zeroed = vec![false; f];
            for k in sample(rng, f, count) {
                zeroed[k] = true;
                masked[i * f + k] = 1.0;
            }
            targets.extend(self.spectrum.without_bins(x, &zeroed)?);
        }
        let device = batch.series.device();
        Ok(FrequencyMasked {
            targets: instance_norm(&Tensor::from_vec(targets, (b, l), device)?)?,
            masked: Tensor::from_vec(masked, (b, f), device)?,
            windows,
        })
    }

    fn embed(encoder: &SeriesEncoder, windows: &Tensor) -> Result<Tensor> {
        let states = encoder.encode_patches(&encoder.patchify(windows)?, None)?;
        states.i((.., 0))
    }

    fn gradients_in_parts(
        &self,
        inputs: &FrequencyMasked,
        parts: usize,
    ) -> Result<(GradStore, Report)> {
        let o = &self.cfg;
        let b = inputs.windows.dim(0)?;
        let blocks = row_blocks(b, parts);
        let target_embeddings = constant_rows(&blocks, |rows| {
            let block = inputs.targets.narrow(0, rows.start, rows.len())?;
            Ok(vec![l2_normalize(&Self::embed(&self.target, &block)?)?])
        })?
        .remove(0);
        let counts = inputs.masked.sum_keepdim(1)?.sqrt()?;
        let mask_embeddings = inputs
            .masked
            .matmul(&self.basis.as_tensor().detach())?
            .broadcast_div(&counts)?;
        let (grads, reports) = block_gradients(blocks, &self.trainable(), |rows| {
            let (first, n) = (rows.start, rows.len());
            let block = |t: &Tensor| t.narrow(0, first, n);
            let both = Self::embed(
                &self.series,
                &Tensor::cat(&[block(&inputs.windows)?, block(&inputs.targets)?], 0)?,
            )?;
            let (series, target) = (both.narrow(0, 0, n)?, both.narrow(0, n, n)?);
            let mask = block(&mask_embeddings)?;
            let inferred = l2_normalize(&self.tei.forward(&(&series + &mask)?)?)?;
            let tei = mean_squares(&inferred, &block(&target_embeddings)?, b)?;
            let inferred_mask = self.mi.forward(&(target - series.detach())?)?;
            let mi = mean_squares(&inferred_mask, &mask, b)?;
            let total = ((&tei * o.tei_weight)? + (&mi * o.mi_weight)?)?;
            let value = |t: &Tensor| t.to_scalar::<f32>();
            let report = Report {
                total: value(&total)?,
                values: vec![value(&tei)?, value(&mi)?],
            };
            Ok((total, report))
        })?;
        let mut report = Report::sum(&reports);
        let spread = target_embeddings
            .broadcast_sub(&target_embeddings.mean_keepdim(0)?)?
            .sqr()?
            .mean(0)?
            .sqrt()?
            .mean_all()?;
        report.values.push(spread.to_scalar::<f32>()?);
        Ok((grads, report))
    }
}

/// Σ over rows of the mean squared difference over the last dimension, over `batch`.
fn mean_squares(a: &Tensor, b: &Tensor, batch: usize) -> Result<Tensor> {
    (a - b)?.sqr()?.mean(D::Minus1)?.sum_all()? / batch as f64
}

impl Objective for Fei {
    const UNUSED: &'static [&'static str] = &["series.mask_token"];
    type Pending = ();

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn online(&self) -> &VarMap {
        &self.online
    }

    fn state(&self) -> &VarMap {
        &self.state
    }

    /// Draws the online weights, copies the encoder into the EMA target and draws the mask
    /// basis (standard normal rows).
    fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)?;
        ema(&self.state, &self.online, 0.0)?;
        let (f, d) = self.basis.dims2()?;
        let values: Vec<f32> = (0..f * d)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng))
            .collect();
        self.basis
            .set(&Tensor::from_vec(values, (f, d), self.basis.device())?)
    }

    fn gradients(
        &self,
        batch: &PairBatch,
        at: Progress,
        rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, ())> {
        let inputs = self.mask_frequencies(batch, rng)?;
        let (grads, mut report) = self.gradients_in_parts(&inputs, rayon::current_num_threads())?;
        report.values.push(self.cfg.momentum_at(at) as f32);
        Ok((grads, report, ()))
    }

    fn after_step(&self, _: (), at: Progress) -> Result<()> {
        ema(&self.state, &self.online, self.cfg.momentum_at(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};
    use crate::pretrain::testing::{assert_steps_lower_the_loss, batch, tiny_model};
    use crate::rng::sample_rng;

    fn model() -> Fei {
        let mut recipe = tiny_model(false);
        recipe.proj_dim = None;
        let cfg = FeiConfig {
            predictor_dim: 8,
            ..Default::default()
        };
        let model = Fei::new(&recipe, &cfg, &Device::Cpu).unwrap();
        model.init(&mut sample_rng(1, 0)).unwrap();
        model
    }

    #[test]
    fn the_fft_round_trip_returns_the_series_and_a_zeroed_bin_removes_its_wave() {
        let spectrum = Spectrum::new(16);
        assert_eq!(spectrum.bins(), 9);
        let wave = |k: f32, i: usize| (2.0 * std::f32::consts::PI * k * i as f32 / 16.0).cos();
        let x: Vec<f32> = (0..16)
            .map(|i| 1.0 + wave(2.0, i) + 0.5 * wave(5.0, i))
            .collect();
        let back = spectrum.without_bins(&x, &[false; 9]).unwrap();
        assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-5));
        let mut zeroed = [false; 9];
        zeroed[5] = true;
        let kept = spectrum.without_bins(&x, &zeroed).unwrap();
        let want: Vec<f32> = (0..16).map(|i| 1.0 + wave(2.0, i)).collect();
        assert!(
            kept.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "{kept:?}"
        );
    }

    #[test]
    fn steps_lower_the_loss() {
        assert_steps_lower_the_loss(&model(), &batch(&tiny_model(false)), 0, 12);
    }

    #[test]
    fn the_ema_rate_rises_from_its_start_to_one() {
        let cfg = FeiConfig::default();
        let at = |step| cfg.momentum_at(Progress { step, steps: 100 });
        assert!((at(0) - 0.995).abs() < 1e-5);
        assert!(at(49) > at(0) && at(49) < 1.0);
        assert!((at(99) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn every_variable_gets_a_gradient_and_blocks_add_up() {
        let model = model();
        let batch = batch(&tiny_model(false));
        let inputs = model
            .mask_frequencies(&batch, &mut sample_rng(2, 0))
            .unwrap();
        let masked = inputs.masked.sum(1).unwrap().to_vec1::<f32>().unwrap();
        // 17 bins for a window of 32, at most 70% of them masked, at least one.
        assert!(
            masked.iter().all(|&m| (1.0..=12.0).contains(&m)),
            "{masked:?}"
        );
        let (whole, report) = model.gradients_in_parts(&inputs, 1).unwrap();
        let (parts, part_report) = model.gradients_in_parts(&inputs, 3).unwrap();
        assert!(
            report.values[0] > 0.0 && report.values[1] > 0.0,
            "{report:?}"
        );
        assert!((report.total - part_report.total).abs() < 1e-5);
        let trainable = model.trainable();
        assert_every_gradient_nonzero(&whole, &trainable);
        for (name, var) in trainable {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            assert!(
                max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0),
                "{name}: the blocks' gradients differ"
            );
        }
        for (name, var) in params::named(&model.state, "") {
            assert!(whole.get(&var).is_none(), "{name} got a gradient");
        }
    }
}
