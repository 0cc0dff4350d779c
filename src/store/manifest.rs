//! `manifest.json`: the list of finished shards with their counts and checksums. It is
//! rewritten atomically after every shard, so it never lists a partial one. Each of W workers
//! keeps its own part (`manifest.part-IIII-of-WWWW.json`); `merge` joins the parts.

use super::shard::Compression;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardEntry {
    pub index: u64,
    pub file: String,
    /// Sample ids [first_id, end_id) belong to this shard.
    pub first_id: u64,
    pub end_id: u64,
    /// Accepted samples stored in the shard.
    pub samples: u64,
    /// Ids whose attempt budget ran out (absent from the shard).
    pub failed: u64,
    /// Candidates rejected by validation, over all ids of the shard.
    pub rejected: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// What a corpus is, apart from its shards: enough to regenerate it exactly.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CorpusSpec {
    pub seed: u64,
    /// The corpus covers sample ids [0, samples).
    pub samples: u64,
    pub shard_size: u64,
    pub length: usize,
    pub compression: Compression,
    pub workers: u32,
    /// The generator preset, stored in the manifest and in every shard (the store does not
    /// interpret it).
    pub config: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    #[serde(flatten)]
    pub spec: CorpusSpec,
    /// The worker this part belongs to; absent in a merged or single-worker manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
    pub shards: Vec<ShardEntry>,
}

impl Manifest {
    pub fn n_shards(&self) -> u64 {
        self.spec.samples.div_ceil(self.spec.shard_size)
    }

    /// The sample ids of shard `index`.
    pub fn ids_of(&self, index: u64) -> std::ops::Range<u64> {
        let CorpusSpec {
            samples,
            shard_size,
            ..
        } = self.spec;
        let first = index.saturating_mul(shard_size).min(samples);
        first..first.saturating_add(shard_size).min(samples)
    }

    /// Shard indices assigned to `worker` (round robin, so every worker gets a similar share).
    pub fn shards_of(&self, worker: u32) -> impl Iterator<Item = u64> + '_ {
        (0..self.n_shards()).filter(move |j| j % self.spec.workers as u64 == worker as u64)
    }

    pub fn is_complete(&self) -> bool {
        let expected = match self.worker {
            Some(w) => self.shards_of(w).count(),
            None => self.n_shards() as usize,
        };
        self.shards.len() == expected
    }

    /// True when `other` describes the same corpus (everything but the shard list).
    pub fn same_corpus(&self, other: &Manifest) -> bool {
        self.spec == other.spec
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::corpus(path, format!("invalid manifest: {e}")))
    }

    /// Writes to a temporary file, syncs it, then renames over the target.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

const PART_PREFIX: &str = "manifest.part-";

fn part_file_name(worker: u32, workers: u32) -> String {
    format!("{PART_PREFIX}{worker:04}-of-{workers:04}.json")
}

/// True for the name of a worker's manifest part.
pub fn is_part_file(name: &str) -> bool {
    name.starts_with(PART_PREFIX) && name.ends_with(".json")
}

/// The manifest file a worker maintains while it runs.
pub fn manifest_path(dir: &Path, worker: u32, workers: u32) -> PathBuf {
    if workers == 1 {
        dir.join(MANIFEST)
    } else {
        dir.join(part_file_name(worker, workers))
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Joins the W worker parts in `dir` into `manifest.json`. Every part must be present,
/// complete and describe the same corpus.
pub fn merge(dir: &Path) -> Result<Manifest> {
    let mut parts = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_part_file(name) {
            parts.push(Manifest::load(&path)?);
        }
    }
    let Some(first) = parts.first().cloned() else {
        return Err(Error::corpus(
            dir,
            "no manifest parts (manifest.part-*.json) to merge",
        ));
    };
    let mut seen = vec![false; first.spec.workers as usize];
    for p in &parts {
        if !p.same_corpus(&first) {
            return Err(Error::corpus(dir, "manifest parts describe different corpora (seed, config, sizes or worker count differ)"));
        }
        let w = p
            .worker
            .ok_or_else(|| Error::corpus(dir, "a manifest part has no worker index"))?;
        if w >= first.spec.workers || seen[w as usize] {
            return Err(Error::corpus(
                dir,
                format!("worker {w} appears twice or is out of range"),
            ));
        }
        seen[w as usize] = true;
        if !p.is_complete() {
            return Err(Error::corpus(
                dir,
                format!(
                    "worker {w} has {} of its shards; finish it (use --resume) before merging",
                    p.shards.len()
                ),
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(Error::corpus(
            dir,
            format!(
                "the part of worker {missing} of {} is missing",
                first.spec.workers
            ),
        ));
    }
    let mut merged = first;
    merged.worker = None;
    merged.shards = parts.into_iter().flat_map(|p| p.shards).collect();
    merged.shards.sort_by_key(|s| s.index);
    merged.save(&dir.join(MANIFEST))?;
    Ok(merged)
}
