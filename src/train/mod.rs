//! Training machinery independent of any objective: the optimiser and schedule, atomic
//! checkpoints, and block-parallel gradients.

pub mod checkpoint;
mod optim;
mod parallel;

pub use optim::{learning_rate, AdamW, MovingAverage};
pub use parallel::{block_gradients, constant_rows, row_blocks};
