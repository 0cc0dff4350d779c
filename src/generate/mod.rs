//! Sample generation: one sample from (seed, id), validation and retry, and the parallel
//! driver that streams samples into shards.

mod driver;
mod sample;
mod validate;

pub use driver::{generate_corpus, GenerateRequest, GenerateSummary, Progress};
pub use sample::Generator;
pub use validate::{check_conditioning, check_series, Rejection, PERTURBATION};
