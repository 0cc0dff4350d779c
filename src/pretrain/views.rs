//! View contrast (`kind = "views"`), the recipe of Mantis-style synthetic pretraining: two
//! random crop-and-resize views of each window, and InfoNCE between their projected [CLS]
//! states. As in MoCo, each view's online features are contrasted with the momentum
//! encoder's features of the other view, against a queue of past momentum features: the
//! negatives then do not depend on the step's other samples, so the batch splits into
//! blocks that train in parallel and add up exactly (`train::block_gradients`).

use super::batch::PairBatch;
use super::losses::{info_nce_distilled, own_nearest, Bank};
use super::momentum::{ema, FeatureQueue, PREFIX};
use super::objective::{Objective, Progress, Report};
use super::recipe::ModelRecipe;
use super::towers::l2_normalize;
use crate::checks::{check_count, check_prob};
use crate::error::Error;
use crate::model::{instance_norm, linear, params, Linear, SeriesEncoder};
use crate::rng::{uniform, SampleRng};
use crate::train::{block_gradients, constant_rows, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::{Module, VarBuilder, VarMap};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ViewsConfig {
    /// Each view keeps a random share of the window's real values, drawn from
    /// [min_crop, 1], resized back to the window length.
    pub min_crop: f64,
    /// Fixed InfoNCE temperature.
    pub temperature: f64,
    /// EMA rate of the momentum encoder.
    pub momentum: f64,
    pub queue_size: usize,
}

impl Default for ViewsConfig {
    fn default() -> Self {
        ViewsConfig {
            min_crop: 0.5,
            temperature: 0.1,
            momentum: 0.99,
            queue_size: 4096,
        }
    }
}

impl ViewsConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_prob("objectives.momentum", self.momentum)?;
        check_count("objectives.queue_size", self.queue_size, 1, 1 << 20)?;
        if !(self.min_crop > 0.0 && self.min_crop <= 1.0) {
            return Err(Error::Config(format!(
                "objectives.min_crop = {} must lie in (0, 1]",
                self.min_crop
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config(format!(
                "objectives.temperature = {} must be finite and > 0",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// The view-contrast loss, and the in-batch top-1 retrieval of view 2 from view 1 (1 /
/// batch is chance; nothing is trained on it).
const COLUMNS: &[&str] = &["views_nce", "retrieval_top1"];

/// The series encoder with its projection: L2-normalised features of the [CLS] state.
struct Projected {
    series: SeriesEncoder,
    proj: Linear,
}

impl Projected {
    fn new(cfg: &ModelRecipe, vb: &VarBuilder) -> Result<Self> {
        let Some(proj_dim) = cfg.proj_dim else {
            candle_core::bail!("view contrast needs model.proj_dim")
        };
        Ok(Projected {
            series: SeriesEncoder::new(&cfg.series, vb.pp("series"))?,
            proj: linear(cfg.series.transformer.d_model, proj_dim, vb.pp("proj"))?,
        })
    }

    fn features(&self, windows: &Tensor) -> Result<Tensor> {
        view_features(&self.series, &self.proj, windows)
    }
}

/// Normalised windows [n, L] → L2-normalised projections of their [CLS] states [n, E].
pub fn view_features(series: &SeriesEncoder, proj: &Linear, windows: &Tensor) -> Result<Tensor> {
    let states = series.encode_patches(&series.patchify(windows)?, None)?;
    l2_normalize(&proj.forward(&states.i((.., 0))?)?)
}

/// Two views of every window of `batch`, each instance-normalised: [B, L] twice. A view
/// keeps a random share in [min_crop, 1] of the window's real values, resized back to L.
pub fn draw_views(
    batch: &PairBatch,
    min_crop: f64,
    rng: &mut SampleRng,
) -> Result<(Tensor, Tensor)> {
    let windows = batch.series.to_vec2::<f32>()?;
    let (b, l) = batch.series.dims2()?;
    let patch = l / batch.patch_valid.dim(1)?;
    let valid = batch.patch_valid.sum(1)?.to_vec1::<f32>()?;
    let mut views = [Vec::with_capacity(b * l), Vec::with_capacity(b * l)];
    for (window, n_valid) in windows.iter().zip(valid) {
        let real = &window[..(n_valid as usize * patch).max(1)];
        for view in &mut views {
            let keep = uniform(rng, [min_crop, 1.0]);
            let len = ((keep * real.len() as f64).round() as usize).clamp(1, real.len());
            let start = rng.random_range(0..=real.len() - len);
            view.extend(crop_resize(&real[start..start + len], l));
        }
    }
    let [a, b_] = views;
    let device = batch.series.device();
    Ok((
        instance_norm(&Tensor::from_vec(a, (b, l), device)?)?,
        instance_norm(&Tensor::from_vec(b_, (b, l), device)?)?,
    ))
}

/// The view-contrast loss of rows `first..first + n` of a batch of `batch` rows, summed and
/// over 2·batch: each view's online features `q` [n, E] against the momentum features of the
/// other view (`keys`, the whole batch's [B, E] each) and `queue`; and how many rows of view
/// 1 retrieve their own view 2 first.
pub fn views_nce(
    q: (&Tensor, &Tensor),
    keys: (&Tensor, &Tensor),
    queue: &Tensor,
    first: usize,
    temperature: &Tensor,
    batch: usize,
) -> Result<(Tensor, usize)> {
    let bank = |keys| Bank { batch: keys, queue };
    // α = 0: plain InfoNCE (the momentum argument only feeds distillation).
    let one = info_nce_distilled(q.0, q.0, bank(keys.1), first, temperature, 0.0)?;
    let two = info_nce_distilled(q.1, q.1, bank(keys.0), first, temperature, 0.0)?;
    let loss = ((one + two)? / (2 * batch) as f64)?;
    Ok((loss, own_nearest(&q.0.detach(), keys.1, first)?))
}

pub struct Views {
    cfg: ViewsConfig,
    online: VarMap,
    state: VarMap,
    model: Projected,
    momentum: Projected,
    queue: FeatureQueue,
}

impl Views {
    pub fn new(cfg: &ModelRecipe, o: &ViewsConfig, device: &Device) -> Result<Self> {
        let (online, state) = (VarMap::new(), VarMap::new());
        let model = Projected::new(cfg, &VarBuilder::from_varmap(&online, DType::F32, device))?;
        let momentum = Projected::new(
            cfg,
            &VarBuilder::from_varmap(&state, DType::F32, device).pp(PREFIX),
        )?;
        let dim = cfg.proj_dim.unwrap_or(0);
        Ok(Views {
            queue: FeatureQueue::new(&state, "queue", o.queue_size, dim, device)?,
            cfg: o.clone(),
            online,
            state,
            model,
            momentum,
        })
    }

    fn gradients_in_parts(
        &self,
        views: &(Tensor, Tensor),
        parts: usize,
    ) -> Result<(GradStore, Report, Tensor)> {
        let b = views.0.dim(0)?;
        let blocks = row_blocks(b, parts);
        let keys = constant_rows(&blocks, |rows| {
            let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let n = rows.len();
            let both = self
                .momentum
                .features(&Tensor::cat(&[block(&views.0)?, block(&views.1)?], 0)?)?;
            Ok(vec![both.narrow(0, 0, n)?, both.narrow(0, n, n)?])
        })?;
        let queue = self.queue.constant();
        let temperature = Tensor::new(&[self.cfg.temperature as f32], views.0.device())?;
        let (grads, reports) = block_gradients(blocks, &self.trainable(), |rows| {
            let (first, n) = (rows.start, rows.len());
            let block = |t: &Tensor| t.narrow(0, first, n);
            let both = self
                .model
                .features(&Tensor::cat(&[block(&views.0)?, block(&views.1)?], 0)?)?;
            let (q1, q2) = (both.narrow(0, 0, n)?, both.narrow(0, n, n)?);
            let (loss, own) = views_nce(
                (&q1, &q2),
                (&keys[0], &keys[1]),
                &queue,
                first,
                &temperature,
                b,
            )?;
            let retrieval = own as f32 / b as f32;
            let value = loss.to_scalar::<f32>()?;
            Ok((
                loss,
                Report {
                    total: value,
                    values: vec![value, retrieval],
                },
            ))
        })?;
        let report = Report::sum(&reports);
        Ok((grads, report, keys[0].clone()))
    }
}

/// `values` resampled to `len` points by linear interpolation, ends kept.
fn crop_resize(values: &[f32], len: usize) -> Vec<f32> {
    let last = values.len() - 1;
    if last == 0 || len < 2 {
        return vec![values[0]; len];
    }
    let scale = last as f64 / (len - 1) as f64;
    (0..len)
        .map(|i| {
            let x = i as f64 * scale;
            let k = (x.floor() as usize).min(last - 1);
            let w = (x - k as f64) as f32;
            values[k] * (1.0 - w) + values[k + 1] * w
        })
        .collect()
}

impl Objective for Views {
    const UNUSED: &'static [&'static str] = &["series.mask_token"];
    /// The momentum features of view 1, to enqueue.
    type Pending = Tensor;

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn online(&self) -> &VarMap {
        &self.online
    }

    fn state(&self) -> &VarMap {
        &self.state
    }

    fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)?;
        ema(&self.state, &self.online, 0.0)?;
        self.queue.fill_random(rng)
    }

    fn gradients(
        &self,
        batch: &PairBatch,
        _at: Progress,
        rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, Tensor)> {
        let views = draw_views(batch, self.cfg.min_crop, rng)?;
        self.gradients_in_parts(&views, rayon::current_num_threads())
    }

    fn after_step(&self, keys: Tensor, _at: Progress) -> Result<()> {
        ema(&self.state, &self.online, self.cfg.momentum)?;
        self.queue.push(&keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};
    use crate::pretrain::testing::{assert_steps_lower_the_loss, batch, tiny_model};
    use crate::rng::sample_rng;

    fn model() -> Views {
        let cfg = ViewsConfig {
            queue_size: 6,
            ..Default::default()
        };
        let model = Views::new(&tiny_model(false), &cfg, &Device::Cpu).unwrap();
        model.init(&mut sample_rng(1, 0)).unwrap();
        model
    }

    #[test]
    fn steps_lower_the_loss() {
        // A long queue of random vectors: the step's own keys, pushed back, would be hard
        // negatives of the same batch.
        let cfg = ViewsConfig {
            queue_size: 1000,
            ..Default::default()
        };
        let model = Views::new(&tiny_model(false), &cfg, &Device::Cpu).unwrap();
        model.init(&mut sample_rng(1, 0)).unwrap();
        assert_steps_lower_the_loss(&model, &batch(&tiny_model(false)), 0, 12);
    }

    #[test]
    fn crop_resize_interpolates_and_keeps_the_ends() {
        assert_eq!(crop_resize(&[0.0, 2.0], 5), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(crop_resize(&[1.0, 3.0, 5.0], 3), vec![1.0, 3.0, 5.0]);
        assert_eq!(crop_resize(&[7.0], 3), vec![7.0; 3]);
    }

    #[test]
    fn views_stay_inside_the_real_values() {
        let model = model();
        let mut batch = batch(&tiny_model(false));
        // Window 0 is real in its first patch only, and that patch is all 5; the padding is 9.
        let mut series = vec![9f32; 4 * 32];
        series[..8].fill(5.0);
        batch.series = Tensor::from_vec(series, (4, 32), &Device::Cpu).unwrap();
        let mut valid = vec![1f32; 16];
        valid[1..4].fill(0.0);
        batch.patch_valid = Tensor::from_vec(valid, (4, 4), &Device::Cpu).unwrap();
        let (a, b) = draw_views(&batch, model.cfg.min_crop, &mut sample_rng(2, 0)).unwrap();
        // A constant view normalises to 0; a view that reached the padding would not be.
        for view in [a, b] {
            let row0 = view.i(0).unwrap().to_vec1::<f32>().unwrap();
            assert!(row0.iter().all(|v| *v == 0.0), "{row0:?}");
        }
    }

    #[test]
    fn every_variable_gets_a_gradient_the_queue_none_and_blocks_add_up() {
        let model = model();
        let batch = batch(&tiny_model(false));
        let views = draw_views(&batch, model.cfg.min_crop, &mut sample_rng(3, 0)).unwrap();
        let (whole, report, keys) = model.gradients_in_parts(&views, 1).unwrap();
        let (parts, part_report, _) = model.gradients_in_parts(&views, 3).unwrap();
        assert!(
            report.values[0].is_finite() && report.values[0] > 0.0,
            "{report:?}"
        );
        assert!((report.total - part_report.total).abs() < 1e-5);
        assert_every_gradient_nonzero(&whole, &model.trainable());
        for (name, var) in model.trainable() {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            assert!(
                max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0),
                "{name}: the blocks' gradients differ"
            );
        }
        assert!(whole.get(model.queue.rows.as_tensor()).is_none());
        // No momentum variable is trained: the gradient store has none of them.
        for (name, var) in params::named(&model.state, "") {
            assert!(whole.get(&var).is_none(), "{name} got a gradient");
        }
        model
            .after_step(keys, Progress { step: 0, steps: 1 })
            .unwrap();
        assert_eq!(model.queue.position().unwrap(), 4);
    }
}
