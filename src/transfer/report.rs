//! The transfer report: per-seed results, mean ± std over seeds, per-class counts; formatted
//! as a table (`Display`) or written as JSON. The caller decides where it goes.

use super::fit::FitReport;
use super::metrics::{mean_std, Scores};
use super::ucr::TsDataset;
use super::{Head, Protocol, TransferRequest};
use crate::error::{Action, Error, Result};
use serde::Serialize;
use std::path::Path;

/// How a seed's classifier was chosen, on TRAIN only.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Selection {
    /// Gradient training; the epoch chosen on the validation split, or the number of epochs
    /// by k-fold cross-validation.
    Epochs(FitReport),
    /// The ridge probe; α chosen by leave-one-out error on TRAIN.
    Ridge {
        alpha: f64,
        loo_mse: f64,
        /// The encoder's features (without the levels).
        features: usize,
        /// The layer read: the one asked for or (under `--layer auto`) chosen; `None`: the
        /// last, by default.
        layer: Option<usize>,
        /// Under `--levels`: the weight chosen for the channel levels (0: left out).
        levels_weight: Option<f64>,
    },
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selection::Epochs(fit) => match fit.folds {
                None => write!(f, "epoch {} of {}", fit.best_epoch, fit.epochs_run),
                Some(k) => write!(f, "{} epochs, chosen by {k}-fold CV", fit.best_epoch),
            },
            Selection::Ridge {
                alpha,
                features,
                layer,
                levels_weight,
                ..
            } => {
                write!(f, "ridge α {alpha:.3} on {features} features")?;
                if let Some(layer) = layer {
                    write!(f, " of layer {layer}")?;
                }
                match levels_weight {
                    Some(w) => write!(f, " + channel levels ×{w}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub selection: Selection,
    /// Scored once, on TEST, with the weights selected on validation.
    pub scores: Scores,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    pub class: String,
    pub train_cases: usize,
    pub test_cases: usize,
    /// Correct TEST predictions, summed over seeds.
    pub correct_over_seeds: usize,
    pub f1_mean: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransferReport {
    pub dataset: String,
    pub model: String,
    pub protocol: Protocol,
    pub channels: usize,
    pub length: usize,
    /// Whether an encoder's probe read the series at that length rather than its window.
    pub native: bool,
    pub train_cases: usize,
    pub test_cases: usize,
    pub val_fraction: f64,
    /// Folds of the k-fold selection of the epoch count (as run: at most one per TRAIN
    /// case); `None`: the hold-out split.
    pub folds: Option<usize>,
    pub head: Head,
    pub max_epochs: usize,
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
    pub macro_f1_mean: f64,
    pub macro_f1_std: f64,
    pub per_class: Vec<ClassSummary>,
    pub seeds: Vec<SeedResult>,
    /// What the data made the evaluation do that a reader should know (see `data_notes`).
    pub notes: Vec<String>,
}

impl TransferReport {
    pub fn new(
        data: &TsDataset,
        model: &str,
        req: &TransferRequest,
        length: usize,
        seeds: Vec<SeedResult>,
        notes: Vec<String>,
    ) -> Self {
        let acc: Vec<f64> = seeds.iter().map(|s| s.scores.accuracy).collect();
        let f1: Vec<f64> = seeds.iter().map(|s| s.scores.macro_f1).collect();
        let (accuracy_mean, accuracy_std) = mean_std(&acc);
        let (macro_f1_mean, macro_f1_std) = mean_std(&f1);
        let per_class = data
            .train
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| ClassSummary {
                class: name.clone(),
                train_cases: data.train.labels.iter().filter(|&&l| l == c).count(),
                test_cases: data.test.labels.iter().filter(|&&l| l == c).count(),
                correct_over_seeds: seeds.iter().map(|s| s.scores.per_class[c].correct).sum(),
                f1_mean: mean_std(
                    &seeds
                        .iter()
                        .map(|s| s.scores.per_class[c].f1)
                        .collect::<Vec<_>>(),
                )
                .0,
            })
            .collect();
        TransferReport {
            dataset: data.name.clone(),
            model: model.to_string(),
            protocol: req.protocol,
            channels: data.train.n_channels(),
            length,
            native: req.native,
            train_cases: data.train.series.len(),
            test_cases: data.test.series.len(),
            val_fraction: req.val_fraction,
            // As the fits ran them (fewer than asked when TRAIN has fewer cases than `k`).
            folds: seeds.iter().find_map(|s| match &s.selection {
                Selection::Epochs(fit) => fit.folds,
                Selection::Ridge { .. } => None,
            }),
            head: req.head,
            max_epochs: req.fit.max_epochs,
            accuracy_mean,
            accuracy_std,
            macro_f1_mean,
            macro_f1_std,
            per_class,
            seeds,
            notes,
        }
    }

    /// Writes the whole report as JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(Error::json(Action::Saving, path))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }
}

impl std::fmt::Display for TransferReport {
    /// The report as a table: the setting, one row per seed, the mean, one row per class.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        writeln!(
            f,
            "{} ({} train / {} test cases, {} channel(s), length {}), model {}, protocol {:?}",
            r.dataset, r.train_cases, r.test_cases, r.channels, r.length, r.model, r.protocol
        )?;
        writeln!(
            f,
            "{}; TEST scored once per seed",
            match r.protocol {
                Protocol::Linear =>
                    "features standardised on TRAIN; ridge α chosen by leave-one-out on TRAIN"
                        .to_string(),
                _ => (match r.folds {
                    None => format!(
                        "model selection: {:.0}% of each TRAIN class held out for validation",
                        100.0 * r.val_fraction
                    ),
                    Some(k) => format!(
                        "model selection: the epoch count by stratified {k}-fold cross-validation on TRAIN, then trained on all of TRAIN"
                    ),
                }) + match r.head {
                    Head::Linear => "",
                    Head::BatchNorm => "; head: batch norm, then linear",
                },
            }
        )?;
        writeln!(
            f,
            "{:>6} {:>10} {:>10} {:>9}  selection",
            "seed", "accuracy", "macro-F1", "seconds"
        )?;
        for s in &r.seeds {
            writeln!(
                f,
                "{:>6} {:>10.4} {:>10.4} {:>9.1}  {}",
                s.seed, s.scores.accuracy, s.scores.macro_f1, s.seconds, s.selection
            )?;
        }
        writeln!(
            f,
            "{:>6} {:>5.4} ± {:.4} {:.4} ± {:.4}",
            "mean", r.accuracy_mean, r.accuracy_std, r.macro_f1_mean, r.macro_f1_std
        )?;
        writeln!(
            f,
            "{:>18} {:>6} {:>6} {:>16} {:>8}",
            "class", "train", "test", "correct (seeds)", "F1 mean"
        )?;
        for c in &r.per_class {
            writeln!(
                f,
                "{:>18} {:>6} {:>6} {:>16} {:>8.3}",
                c.class,
                c.train_cases,
                c.test_cases,
                format!("{}/{}", c.correct_over_seeds, c.test_cases * r.seeds.len()),
                c.f1_mean
            )?;
        }
        for note in &r.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}
