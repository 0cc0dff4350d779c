//! `manifest.json`: the list of finished shards with their counts and checksums. It is
//! rewritten atomically after every shard, so it never lists a partial one. Each of W workers
//! keeps its own part (`manifest.part-IIII-of-WWWW.json`); `merge` joins the parts.

use super::record::Rejections;
use super::shard::{shard_file_name, Compression, FORMAT_VERSION};
use crate::checks::write_atomically;
use crate::error::{Error, Result};
use crate::lock::lock_dir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

/// The most shards in one corpus (the manifest lists each; 10,000-sample shards make it ten
/// billion samples).
pub const MAX_SHARDS: u64 = 1_000_000;

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
    /// Candidates rejected by validation, over all ids of the shard...
    pub rejected: u64,
    /// ...and why (absent from manifests written before the reasons were counted).
    #[serde(default)]
    pub rejections: Rejections,
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
    /// The revision of the code that turns (seed, id, preset) into a sample: shards of one
    /// corpus must all come from one revision. Manifests from before it was recorded are 1.
    #[serde(default = "first_revision")]
    pub generator_revision: u32,
}

fn first_revision() -> u32 {
    1
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

    /// Reads a manifest and checks that it is one s2kit could have written (see `check`).
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::corpus(path, format!("invalid manifest: {e}")))?;
        manifest
            .check()
            .map_err(|why| Error::corpus(path, format!("invalid manifest: {why}")))?;
        Ok(manifest)
    }

    /// Edits that would make a reader count, or open, the wrong thing: an unknown version,
    /// impossible sizes, a shard listed twice or outside this part's share, a file name that
    /// is not the shard's own (such as `../x.h5`), or counts that do not add up.
    fn check(&self) -> std::result::Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (this s2kit reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let spec = &self.spec;
        if spec.samples == 0 || spec.shard_size == 0 || spec.workers == 0 {
            return Err("samples, shard_size and workers must be at least 1".into());
        }
        if self.n_shards() > MAX_SHARDS {
            return Err(format!("more than {MAX_SHARDS} shards"));
        }
        if self.worker.is_some_and(|w| w >= spec.workers) {
            return Err(format!(
                "worker index out of range for {} workers",
                spec.workers
            ));
        }
        let mut previous = None;
        for s in &self.shards {
            let at = format!("shard entry {}", s.index);
            if previous.is_some_and(|p| s.index <= p) {
                return Err(format!("{at} is listed twice or out of order"));
            }
            previous = Some(s.index);
            let ids = self.ids_of(s.index);
            let owner = s.index % spec.workers as u64;
            if s.index >= self.n_shards() || self.worker.is_some_and(|w| owner != w as u64) {
                return Err(format!("{at} is not a shard of this corpus or part"));
            }
            if s.file != shard_file_name(s.index) {
                return Err(format!(
                    "{at} names file '{}', not {}",
                    s.file,
                    shard_file_name(s.index)
                ));
            }
            let count = ids.end - ids.start;
            if (s.first_id, s.end_id) != (ids.start, ids.end)
                || s.samples.checked_add(s.failed) != Some(count)
            {
                return Err(format!(
                    "{at}: ids {}..{} with {} samples and {} failed do not match its {count} ids {}..{}",
                    s.first_id, s.end_id, s.samples, s.failed, ids.start, ids.end
                ));
            }
            if s.rejections != Rejections::default() && s.rejections.total() != s.rejected {
                return Err(format!(
                    "{at}: its rejections by reason do not add up to rejected"
                ));
            }
            if s.sha256.len() != 64 || !s.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{at}: sha256 is not a SHA-256 digest"));
            }
        }
        Ok(())
    }

    /// Writes to a temporary file, syncs it, then renames over the target.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        write_atomically(path, &text)
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

/// Every listed shard file exists with the size the manifest gives (a cheap check; the
/// checksum is verified when a shard is read).
pub fn check_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    for s in &manifest.shards {
        let path = dir.join(&s.file);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == s.bytes => {}
            Ok(m) => {
                return Err(Error::corpus(
                    &path,
                    format!("is {} bytes but the manifest lists {}", m.len(), s.bytes),
                ))
            }
            Err(e) => {
                return Err(Error::corpus(
                    &path,
                    format!("listed in the manifest but unreadable: {e}"),
                ))
            }
        }
    }
    Ok(())
}

/// Joins the W worker parts in `dir` into `manifest.json`. Every part must be present,
/// complete and describe the same corpus.
pub fn merge(dir: &Path) -> Result<Manifest> {
    let _lock = lock_dir(dir, None)?;
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
    check_files(dir, &merged)?;
    merged.save(&dir.join(MANIFEST))?;
    Ok(merged)
}
