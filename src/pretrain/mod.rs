//! Pretraining from corpus shards: the recipe, the pair loader and batches, the objectives
//! behind one interface (`objective::Objective`: SymTime's series-symbol model, view
//! contrast, TimeMAE, FEI), their shared losses and momentum state, and the run loop.

mod batch;
mod fei;
mod loader;
mod losses;
mod momentum;
mod objective;
mod recipe;
mod run;
mod symtime;
#[cfg(test)]
mod testing;
mod timemae;
mod towers;
mod views;

pub use batch::PairBatch;
pub use fei::FeiConfig;
pub use loader::{Pair, PairStream};
pub use objective::{Objective, Progress, Report};
pub use recipe::{ModelRecipe, ObjectiveConfig, PretrainRecipe, TrainConfig};
pub use run::{
    plot_losses, pretrain, recorded_run, PretrainRequest, PretrainSummary, RunRecord, StepReport,
};
pub use symtime::{SymTime, SymTimeConfig};
pub use timemae::TimeMaeConfig;
pub use views::ViewsConfig;
