//! s2kit: synthetic series-symbol data for time-series foundation models.

pub mod error;
pub mod excitation;
pub mod rng;
pub mod symbolic;

pub use error::{Error, Result};
pub mod checks;
pub mod data;
pub mod generate;
pub mod inspect;
pub mod model;
pub mod ode;
pub mod pipeline;
pub mod plot;
pub mod preset;
pub mod pretrain;
pub mod runtime;
pub mod store;
pub mod train;
pub mod transfer;
