//! s2kit: synthetic series-symbol data for time-series foundation models.
//!
//! The modules form floors, listed here from the ground up; within a floor, too, a module
//! imports only the ones named before it (`tests/layering.rs` checks this strict order):
//!
//! 1. `error`, `rng`, `checks`, `digest`, `lock`, `runtime`, `ops` (kernels and fused ops), `plot`
//! 2. `symbolic`, `excitation`, `ode`, then `preset`; `store` (records, shards, manifests)
//! 3. `generate`; `model`; then `train`
//! 4. `pretrain`, `transfer`, `inspect`
//! 5. `pipeline` (`s2kit run`)
//!
//! The command line (`src/main.rs`, `src/cli/`) sits on top and only parses and prints.

pub mod checks;
pub mod digest;
pub mod error;
pub mod excitation;
pub mod generate;
pub mod inspect;
pub mod lock;
pub mod model;
pub mod ode;
mod ops;
pub mod pipeline;
pub mod plot;
pub mod preset;
pub mod pretrain;
pub mod rng;
pub mod runtime;
pub mod store;
pub mod symbolic;
pub mod train;
pub mod transfer;

pub use error::{Error, Result};
