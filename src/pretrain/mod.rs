//! SymTime-style pretraining from corpus shards: the recipe, the pair loader and batches,
//! the two towers with their momentum copies, the losses, and the run loop.

mod batch;
mod loader;
mod model;
mod momentum;
mod objectives;
mod recipe;
mod run;
mod towers;

pub use batch::PairBatch;
pub use loader::{Pair, PairStream};
pub use model::{Losses, SymTime};
pub use recipe::{ModelRecipe, ObjectiveConfig, PretrainRecipe, TrainConfig};
pub use run::{
    plot_losses, pretrain, recorded_run, PretrainRequest, PretrainSummary, RunRecord, StepReport,
};
