//! The interface every pretraining objective implements. The run loop (`run`) owns the
//! loader, the optimiser, checkpoints, resume, metrics and the encoder export; an objective
//! owns only its heads, its extra state (EMA targets, queues, codebooks) and its losses.
//! Every objective keeps the series encoder that transfer evaluates under the weight prefix
//! `series.`, so all of them are evaluated through the same `s2kit transfer`/`embed` path.

use super::batch::PairBatch;
use crate::model::params;
use crate::rng::SampleRng;
use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::VarMap;

/// Where a step lies in its run (0-based `step` of `steps`), for schedules such as a
/// distillation ramp or an EMA rate rising towards 1.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
}

impl Progress {
    /// The share of the run completed after this step, in (0, 1].
    pub fn fraction(&self) -> f64 {
        (self.step + 1) as f64 / self.steps.max(1) as f64
    }
}

/// What one step reports: the weighted total it trained on, and one value per column of
/// `Objective::columns` (losses, and metrics a person can read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub total: f32,
    pub values: Vec<f32>,
}

impl Report {
    /// The sum of the blocks' reports (the blocks of a batch add up to the batch).
    pub fn sum<'a>(blocks: impl IntoIterator<Item = &'a Report>) -> Report {
        let mut total = Report::default();
        for block in blocks {
            total.add(block);
        }
        total
    }

    fn add(&mut self, other: &Report) {
        self.total += other.total;
        if self.values.is_empty() {
            self.values = vec![0.0; other.values.len()];
        }
        for (v, o) in self.values.iter_mut().zip(&other.values) {
            *v += o;
        }
    }

    /// The value of column `name` of `columns`.
    pub fn get(&self, columns: &[&str], name: &str) -> Option<f32> {
        let i = columns.iter().position(|c| *c == name)?;
        self.values.get(i).copied()
    }
}

pub trait Objective: Sync {
    /// What the step hands to `after_step` (e.g. the momentum features to enqueue).
    type Pending;

    /// Online variables the objective never reads (the series encoder's mask embedding, for
    /// objectives that mask no patch): left out of training, kept in the encoder file.
    const UNUSED: &'static [&'static str] = &[];

    /// The names of `Report::values`, as `metrics.csv` columns.
    fn columns(&self) -> &'static [&'static str];

    /// The trained weights; the series encoder is under `series.`.
    fn online(&self) -> &VarMap;

    /// Checkpointed, never trained: EMA copies, queues, codebooks (may be empty).
    fn state(&self) -> &VarMap;

    /// Draws the online weights from `rng` and starts the state from them (a fresh run; a
    /// resumed one restores both instead).
    fn init(&self, rng: &mut SampleRng) -> Result<()>;

    /// The gradients of one batch's weighted loss, its report, and what `after_step` needs.
    /// `rng` is this step's own stream (resumed runs draw the same).
    fn gradients(
        &self,
        batch: &PairBatch,
        at: Progress,
        rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, Self::Pending)>;

    /// After the optimiser step: EMA updates, queues, clamps.
    fn after_step(&self, pending: Self::Pending, at: Progress) -> Result<()>;

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut vars = params::trainable(self.online(), "");
        vars.retain(|(name, _)| !Self::UNUSED.contains(&name.as_str()));
        vars
    }
}
