//! Pretraining from corpus shards: the recipe, the pair loader and batches, the objectives
//! behind one interface (`objective::Objective`: SymTime's series-symbol model, view
//! contrast, TimeMAE, FEI, CrossTimeNet with its VQ tokenizer), their shared losses and momentum state, and the run loop.

mod batch;
mod crosstimenet;
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
mod vq;

pub use batch::PairBatch;
pub use crosstimenet::CrossTimeNetConfig;
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
pub use vq::VqConfig;
