//! The on-disk corpus: HDF5 shards plus a manifest. Knows nothing of how samples are made.

mod corpus;
mod manifest;
mod shard;

pub use corpus::Corpus;
pub use manifest::{
    manifest_path, merge, part_file_name, sha256_file, Manifest, ShardEntry, MANIFEST,
};
pub use shard::{
    read_shard, shard_file_name, write_shard, Compression, ShardData, ShardMeta, FORMAT_VERSION,
};
