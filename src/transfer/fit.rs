//! The supervised training loops shared by every protocol. TEST is never seen here.
//!
//! - Hold-out (`fit`): the epoch with the highest validation accuracy (ties broken by the
//!   lower validation loss) is restored at the end, the learning rate halves when that
//!   criterion stops improving, and training stops early when it has not improved for a
//!   while.
//! - k-fold (`validation_curve`, then `fit_epochs`): a fixed schedule (constant learning
//!   rate, every epoch run) is scored on each fold, and the number of epochs with the best
//!   mean is then trained on all of TRAIN.

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
    /// Validation loss and accuracy at the chosen epoch: on the hold-out split, or (with
    /// `folds`) their means over the folds.
    pub best_val_loss: f64,
    pub best_val_accuracy: f64,
    /// The number of folds the epoch was chosen by; `None`: the hold-out split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
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

/// A classifier's logits for a batch of inputs, in training mode or not.
type Logits<'a> = dyn Fn(&Tensor, bool) -> candle_core::Result<Tensor> + 'a;

/// Loss and accuracy of `logits` over `data`, in eval mode, in chunks.
pub fn evaluate(logits: &Logits, data: &Batchable) -> candle_core::Result<(f64, f64, Vec<usize>)> {
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

/// The optimisers of a run (one per parameter group, with its share of the learning rate)
/// and the case order it shuffles again at every epoch.
struct Trainer {
    optimisers: Vec<(AdamW, f64)>,
    order: Vec<u32>,
}

impl Trainer {
    fn new(groups: Vec<ParamGroup>, train: &Batchable) -> candle_core::Result<Trainer> {
        let optimisers = groups
            .into_iter()
            .map(|g| Ok((AdamW::new(g.vars, 0.0)?, g.lr_scale)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Trainer {
            optimisers,
            order: (0..train.len() as u32).collect(),
        })
    }

    /// One pass over `train` in a fresh shuffle: cross-entropy, AdamW (no weight decay, no
    /// clipping).
    fn epoch(
        &mut self,
        logits: &Logits,
        train: &Batchable,
        batch_size: usize,
        lr: f64,
        rng: &mut SampleRng,
    ) -> candle_core::Result<()> {
        let device = train.x.device();
        self.order.shuffle(rng);
        for chunk in batches(&self.order, batch_size) {
            let idx = Tensor::from_slice(chunk, chunk.len(), device)?;
            let out = logits(&train.x.index_select(&idx, 0)?, true)?;
            let loss = candle_nn::loss::cross_entropy(&out, &train.y.index_select(&idx, 0)?)?;
            let grads = loss.backward()?;
            for (opt, scale) in self.optimisers.iter_mut() {
                opt.step(&grads, lr * *scale, f64::INFINITY)?;
            }
        }
        Ok(())
    }
}

/// `order` in batches of `batch_size`, except that a last case left on its own joins the batch
/// before it: the batch-norm head normalises over the batch alone, and one case's normalised
/// features are constant. (A batch size of 1 asked for batches of one; that head refuses it.)
fn batches(order: &[u32], batch_size: usize) -> Vec<&[u32]> {
    let mut batches: Vec<&[u32]> = order.chunks(batch_size).collect();
    if batch_size > 1 && batches.len() > 1 && batches[batches.len() - 1].len() == 1 {
        batches.pop();
        let joined = batches.pop().map_or(0, <[u32]>::len) + 1;
        batches.push(&order[order.len() - joined..]);
    }
    batches
}

/// Whether validation (loss, accuracy) `candidate` beats `best`: higher accuracy, or the same
/// accuracy with a lower loss.
fn improves((loss, acc): (f64, f64), (best_loss, best_acc): (f64, f64)) -> bool {
    acc > best_acc + 1e-9 || (acc >= best_acc - 1e-9 && loss < best_loss - 1e-6)
}

/// Validation loss and accuracy, refusing a loss that is not finite.
fn score_epoch(logits: &Logits, val: &Batchable, epoch: usize) -> candle_core::Result<(f64, f64)> {
    let (val_loss, val_acc, _) = evaluate(logits, val)?;
    if !val_loss.is_finite() {
        return Err(candle_core::Error::Msg(format!(
            "validation loss became {val_loss} at epoch {epoch}"
        )));
    }
    Ok((val_loss, val_acc))
}

/// Trains each group's variables on `train` (see `Trainer::epoch`), selects the epoch on the
/// hold-out `val` by accuracy (validation loss breaks ties) and leaves the selected weights
/// (and buffers) in `varmap`. With `start_is_candidate`, the starting weights compete as
/// epoch 0 (for a head that starts as a fitted classifier; a random start should not be
/// chosen for lack of a better epoch on a few validation cases).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    logits: &Logits,
    groups: Vec<ParamGroup>,
    start_is_candidate: bool,
    varmap: &VarMap,
    train: &Batchable,
    val: &Batchable,
    cfg: &FitConfig,
    rng: &mut SampleRng,
    on_epoch: &dyn Fn(usize, f64),
) -> candle_core::Result<FitReport> {
    let mut trainer = Trainer::new(groups, train)?;
    let mut lr = cfg.lr;
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
        trainer.epoch(logits, train, cfg.batch_size, lr, rng)?;
        epochs_run = epoch;
        let (val_loss, val_acc) = score_epoch(logits, val, epoch)?;
        on_epoch(epoch, val_loss);
        // best = (loss, accuracy, epoch)
        if improves((val_loss, val_acc), (best.0, best.1)) {
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
        folds: None,
    })
}

/// (validation loss, accuracy) after each epoch of the fixed schedule: `cfg.max_epochs`
/// epochs at the constant rate `cfg.lr`. Entry 0 scores the starting weights.
pub fn validation_curve(
    logits: &Logits,
    groups: Vec<ParamGroup>,
    train: &Batchable,
    val: &Batchable,
    cfg: &FitConfig,
    rng: &mut SampleRng,
    on_epoch: &dyn Fn(usize, f64),
) -> candle_core::Result<Vec<(f64, f64)>> {
    let mut trainer = Trainer::new(groups, train)?;
    let (start_loss, start_acc, _) = evaluate(logits, val)?;
    let mut curve = vec![(start_loss, start_acc)];
    for epoch in 1..=cfg.max_epochs {
        trainer.epoch(logits, train, cfg.batch_size, cfg.lr, rng)?;
        let scores = score_epoch(logits, val, epoch)?;
        on_epoch(epoch, scores.0);
        curve.push(scores);
    }
    Ok(curve)
}

/// The epoch whose mean over the folds' curves has the best accuracy (mean loss breaks ties,
/// then the earlier epoch), with its mean (loss, accuracy). Epoch 0, the starting weights,
/// competes only with `start_is_candidate`.
pub fn best_mean_epoch(curves: &[Vec<(f64, f64)>], start_is_candidate: bool) -> (usize, f64, f64) {
    let epochs = curves.iter().map(Vec::len).min().unwrap_or(0);
    let first = usize::from(!start_is_candidate);
    let mut best = (first, f64::INFINITY, -1.0);
    for epoch in first..epochs {
        let mean = |pick: fn(&(f64, f64)) -> f64| {
            curves.iter().map(|c| pick(&c[epoch])).sum::<f64>() / curves.len() as f64
        };
        let (loss, acc) = (mean(|s| s.0), mean(|s| s.1));
        if !loss.is_finite() {
            continue;
        }
        if improves((loss, acc), (best.1, best.2)) {
            best = (epoch, loss, acc);
        }
    }
    best
}

/// Trains for exactly `epochs` epochs of the fixed schedule of `validation_curve`.
pub fn fit_epochs(
    logits: &Logits,
    groups: Vec<ParamGroup>,
    train: &Batchable,
    epochs: usize,
    cfg: &FitConfig,
    rng: &mut SampleRng,
) -> candle_core::Result<()> {
    let mut trainer = Trainer::new(groups, train)?;
    for _ in 0..epochs {
        trainer.epoch(logits, train, cfg.batch_size, cfg.lr, rng)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::{batches, best_mean_epoch};

    #[test]
    fn a_lone_last_case_joins_the_batch_before_it() {
        let sizes = |n: u32, b| {
            let order: Vec<u32> = (0..n).collect();
            batches(&order, b)
                .into_iter()
                .map(<[u32]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(33, 16), [16, 17]);
        assert_eq!(sizes(34, 16), [16, 16, 2]);
        assert_eq!(sizes(32, 16), [16, 16]);
        assert_eq!(sizes(3, 1), [1, 1, 1]);
        // One case in all is still one batch of one.
        assert_eq!(sizes(1, 16), [1]);
        assert_eq!(sizes(0, 16), Vec::<usize>::new());
    }

    #[test]
    fn the_epoch_with_the_best_mean_accuracy_wins_and_loss_breaks_ties() {
        // (loss, accuracy) per epoch, 0 to 3, on two folds.
        let curves = vec![
            vec![(0.2, 1.0), (0.9, 0.5), (0.6, 0.75), (0.4, 0.75)],
            vec![(0.2, 1.0), (0.8, 0.5), (0.5, 1.0), (0.3, 1.0)],
        ];
        // Epochs 2 and 3 tie at 0.875; epoch 3 has the lower mean loss.
        let (epoch, loss, acc) = best_mean_epoch(&curves, false);
        assert_eq!(epoch, 3);
        assert!((loss - 0.35).abs() < 1e-12 && (acc - 0.875).abs() < 1e-12);
        // The starting weights compete only when asked to.
        assert_eq!(best_mean_epoch(&curves, true).0, 0);
    }
}
