//! Training utilities independent of any objective: the optimiser and schedule, atomic
//! checkpoints.

pub mod checkpoint;
mod optim;

pub use optim::{learning_rate, AdamW, MovingAverage};
