//! The on-disk corpus: the records it holds, HDF5 shards, the manifest, the writer that
//! prepares and resumes an output directory, and the reader. Knows nothing of how samples
//! are made.

mod chunks;
mod corpus;
mod direct;
mod manifest;
mod memory_file;
mod record;
mod shard;
mod writer;

pub use corpus::Corpus;
pub use manifest::{merge, CorpusSpec, Manifest, ShardEntry, MANIFEST, MAX_SHARDS};
pub use record::{Outcome, Rejections, Sample, SampleKind, NOT_ODE};
pub use shard::{read_shard, Compression, PackedShard, ShardData, ShardLayout, StagedShard};
pub use writer::{CorpusWriter, ShardStager};
