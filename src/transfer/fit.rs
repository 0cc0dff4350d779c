//! The supervised training loop shared by every protocol. Model selection uses only the
//! validation split: the epoch with the highest validation accuracy (ties broken by the lower
//! validation loss) is restored at the end, the learning rate halves when that criterion
//! stops improving, and training stops early when it has not improved for a while. TEST is
//! never seen here.

use crate::model::params;
use crate::rng::SampleRng;
use crate::train::AdamW;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitConfig {
    pub max_epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Epochs without a better validation score (accuracy, then loss) before the learning
    /// rate is halved.
    pub plateau_patience: usize,
    pub min_lr: f64,
    /// Epochs without a better validation score before training stops.
    pub early_stop_patience: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        // Wang et al.'s FCN recipe (Adam, lr 1e-3, halve on plateau, batch 16), with early
        // stopping on the validation split so the budget fits 2 CPU cores.
        FitConfig {
            max_epochs: 300,
            batch_size: 16,
            lr: 1e-3,
            plateau_patience: 30,
            min_lr: 1e-4,
            early_stop_patience: 100,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FitReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_val_accuracy: f64,
}

/// Inputs and integer labels of one split.
pub struct Batchable<'a> {
    pub x: &'a Tensor,
    pub y: &'a Tensor,
}

impl Batchable<'_> {
    fn len(&self) -> usize {
        self.x.dim(0).unwrap_or(0)
    }
}

/// Loss and accuracy of `logits` over `data`, in eval mode, in chunks.
pub fn evaluate(
    logits: &dyn Fn(&Tensor, bool) -> candle_core::Result<Tensor>,
    data: &Batchable,
) -> candle_core::Result<(f64, f64, Vec<usize>)> {
    let n = data.len();
    let (mut loss_sum, mut predictions) = (0.0, Vec::with_capacity(n));
    for start in (0..n).step_by(256) {
        let len = (n - start).min(256);
        let out = logits(&data.x.narrow(0, start, len)?, false)?;
        let y = data.y.narrow(0, start, len)?;
        loss_sum +=
            candle_nn::loss::cross_entropy(&out, &y)?.to_scalar::<f32>()? as f64 * len as f64;
        predictions.extend(
            out.argmax(1)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|p| p as usize),
        );
    }
    let truth = data.y.to_vec1::<u32>()?;
    let correct = predictions
        .iter()
        .zip(&truth)
        .filter(|(p, t)| **p == **t as usize)
        .count();
    Ok((
        loss_sum / n.max(1) as f64,
        correct as f64 / n.max(1) as f64,
        predictions,
    ))
}

/// Variables trained at `lr_scale` times the schedule's learning rate.
pub struct ParamGroup {
    pub vars: Vec<(String, Var)>,
    pub lr_scale: f64,
}

/// Trains each group's variables to minimise cross-entropy of `logits` on `train` with
/// AdamW (no weight decay, no clipping), selects the epoch by validation accuracy
/// (validation loss breaks ties) and leaves the selected weights (and buffers) in `varmap`.
/// With `start_is_candidate`, the starting weights compete as epoch 0 (for a head that
/// starts as a fitted classifier; a random start should not be chosen for lack of a better
/// epoch on a few validation cases).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    logits: &dyn Fn(&Tensor, bool) -> candle_core::Result<Tensor>,
    groups: Vec<ParamGroup>,
    start_is_candidate: bool,
    varmap: &VarMap,
    train: &Batchable,
    val: &Batchable,
    cfg: &FitConfig,
    rng: &mut SampleRng,
    on_epoch: &dyn Fn(usize, f64),
) -> candle_core::Result<FitReport> {
    let device = train.x.device().clone();
    let mut optimisers = groups
        .into_iter()
        .map(|g| Ok((AdamW::new(g.vars, 0.0)?, g.lr_scale)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mut lr = cfg.lr;
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    let mut best = (f64::INFINITY, -1.0, 0usize);
    if start_is_candidate {
        let (val_loss, val_acc, _) = evaluate(logits, val)?;
        if val_loss.is_finite() {
            best = (val_loss, val_acc, 0);
        }
    }
    let mut best_weights = params::snapshot(varmap)?;
    let (mut since_best, mut since_lr_change) = (0usize, 0usize);
    let mut epochs_run = 0;
    for epoch in 1..=cfg.max_epochs {
        order.shuffle(rng);
        for chunk in order.chunks(cfg.batch_size) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let out = logits(&train.x.index_select(&idx, 0)?, true)?;
            let loss = candle_nn::loss::cross_entropy(&out, &train.y.index_select(&idx, 0)?)?;
            let grads = loss.backward()?;
            for (opt, scale) in &mut optimisers {
                opt.step(&grads, lr * *scale, f64::INFINITY)?;
            }
        }
        epochs_run = epoch;
        let (val_loss, val_acc, _) = evaluate(logits, val)?;
        on_epoch(epoch, val_loss);
        if !val_loss.is_finite() {
            return Err(candle_core::Error::Msg(format!(
                "validation loss became {val_loss} at epoch {epoch}"
            )));
        }
        // best = (loss, accuracy, epoch)
        if val_acc > best.1 + 1e-9 || (val_acc >= best.1 - 1e-9 && val_loss < best.0 - 1e-6) {
            best = (val_loss, val_acc, epoch);
            best_weights = params::snapshot(varmap)?;
            since_best = 0;
            since_lr_change = 0;
        } else {
            since_best += 1;
            since_lr_change += 1;
        }
        if since_lr_change >= cfg.plateau_patience && lr > cfg.min_lr {
            lr = (lr * 0.5).max(cfg.min_lr);
            since_lr_change = 0;
        }
        if since_best >= cfg.early_stop_patience {
            break;
        }
    }
    params::restore(varmap, &best_weights, "")?;
    Ok(FitReport {
        epochs_run,
        best_epoch: best.2,
        best_val_loss: best.0,
        best_val_accuracy: best.1,
    })
}

/// `[n, channels, length]` inputs and `[n]` u32 labels.
pub fn to_tensors(
    values: &[f32],
    labels: &[usize],
    shape: (usize, usize, usize),
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let x = Tensor::from_slice(values, shape, device)?;
    let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let y = Tensor::from_vec(y, labels.len(), device)?;
    Ok((x, y))
}
