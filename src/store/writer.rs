//! Writing a corpus: the output directory is prepared (or resumed), each finished shard is
//! stored with its manifest entry, and the manifest is rewritten after every shard. The
//! generator only schedules work and hands finished shards over.

use super::direct::FileImage;
use super::manifest::{manifest_path, CorpusSpec, Manifest, ShardEntry, MANIFEST};
use super::shard::{
    shard_file_name, stage_shard, PackedShard, ShardLayout, ShardMeta, StagedShard, FORMAT_VERSION,
};
use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::lock::{is_lock_file, lock_dir, Lock};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One worker's writer: its manifest (or manifest part) and the shards still to write.
pub struct CorpusWriter {
    out: PathBuf,
    manifest_path: PathBuf,
    manifest: Manifest,
    config_json: String,
    worker: u32,
    /// This worker's claim on `out`, held until the writer is dropped.
    _lock: Lock,
}

impl CorpusWriter {
    /// Prepares `out` for `worker`'s shards of `spec`. Without `resume`, the files this
    /// worker would write must not exist yet; with it, finished shards whose checksums still
    /// match are kept, and a directory holding a different corpus is refused.
    pub fn open(out: &Path, spec: &CorpusSpec, worker: u32, resume: bool) -> Result<CorpusWriter> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        // Creating the lock file also proves the directory writable before any work.
        let role = (spec.workers > 1).then(|| format!("worker-{worker:04}-of-{:04}", spec.workers));
        let lock = lock_dir(out, role.as_deref())?;
        let plan = Manifest {
            format_version: FORMAT_VERSION,
            spec: spec.clone(),
            worker: (spec.workers > 1).then_some(worker),
            shards: Vec::new(),
        };
        let path = manifest_path(out, worker, spec.workers);
        let manifest = if resume && path.exists() {
            resume_manifest(out, plan, &path)?
        } else {
            // Nothing of ours to resume: as for a fresh run, foreign files are not written among.
            check_fresh(out, &plan, worker, resume)?;
            plan
        };
        manifest.save(&path)?;
        let config_json = serde_json::to_string(&spec.config)
            .map_err(|e| Error::Other(format!("preset is not storable as JSON: {e}")))?;
        Ok(CorpusWriter {
            out: out.to_path_buf(),
            manifest_path: path,
            manifest,
            config_json,
            worker,
            _lock: lock,
        })
    }

    /// Shards already finished (kept from an earlier run).
    pub fn finished(&self) -> usize {
        self.manifest.shards.len()
    }

    /// Once every shard of this worker's share is written and none holds a sample: the
    /// failed ids and rejected candidates over the share.
    pub fn complete_and_empty(&self) -> Option<(u64, u64)> {
        let shards = &self.manifest.shards;
        (self.manifest.is_complete() && shards.iter().all(|s| s.samples == 0)).then(|| {
            let failed = shards.iter().map(|s| s.failed).sum();
            (failed, shards.iter().map(|s| s.rejected).sum())
        })
    }

    /// This worker's shards that are not finished yet, in order.
    pub fn todo(&self) -> Vec<u64> {
        let done: Vec<u64> = self.manifest.shards.iter().map(|s| s.index).collect(); // sorted
        self.manifest
            .shards_of(self.worker)
            .filter(|j| done.binary_search(j).is_err())
            .collect()
    }

    /// The sample ids of shard `index`.
    pub fn ids(&self, index: u64) -> Range<u64> {
        self.manifest.ids_of(index)
    }

    /// How this corpus's shards are laid out, for [`PackedShard::pack`].
    pub fn layout(&self) -> ShardLayout {
        ShardLayout {
            length: self.manifest.spec.length,
            compression: self.manifest.spec.compression,
        }
    }

    /// What the generating pool needs to stage this corpus's shards.
    pub fn stager(&self) -> ShardStager {
        ShardStager {
            out: self.out.clone(),
            meta: ShardMeta {
                seed: self.manifest.spec.seed,
                config_json: self.config_json.clone(),
                layout: self.layout(),
            },
            image: Mutex::default(),
        }
    }

    /// Makes a staged shard durable and visible, lists it in the manifest and saves the
    /// manifest. Returns the shard's entry.
    pub fn store(&mut self, staged: StagedShard) -> Result<&ShardEntry> {
        staged.publish(&self.out)?;
        let index = staged.index;
        let ids = self.ids(index);
        let entry = ShardEntry {
            index,
            file: shard_file_name(index),
            first_id: ids.start,
            end_id: ids.end,
            samples: staged.samples,
            failed: staged.failed,
            rejected: staged.rejections.total(),
            rejections: staged.rejections,
            bytes: staged.bytes,
            sha256: staged.sha256,
        };
        let shards = &mut self.manifest.shards;
        shards.push(entry);
        shards.sort_by_key(|s| s.index);
        self.manifest.save(&self.manifest_path)?;
        let at = self.manifest.shards.iter().position(|s| s.index == index);
        Ok(&self.manifest.shards[at.expect("just listed")])
    }
}

/// Stages shards (builds, checksums and writes them under temporary names) for a
/// [`CorpusWriter`], on any thread.
pub struct ShardStager {
    out: PathBuf,
    meta: ShardMeta,
    /// The memory each shard's file is built in, kept for the next (one stage at a time
    /// holds it; the generator stages shard after shard).
    image: Mutex<FileImage>,
}

impl ShardStager {
    pub fn stage(&self, index: u64, shard: &PackedShard) -> Result<StagedShard> {
        // A panic in an earlier stage leaves nothing to distrust: each file starts from an
        // emptied image.
        let mut image = self.image.lock().unwrap_or_else(|e| e.into_inner());
        stage_shard(&self.out, index, shard, &self.meta, &mut image)
    }
}

/// For a run with nothing to resume, refuses a directory that already holds files where it
/// would write. A single worker wants an empty directory (lock files aside); among W workers,
/// each only checks the files it would write.
fn check_fresh(out: &Path, plan: &Manifest, worker: u32, resume: bool) -> Result<()> {
    let not_empty = |what: String| {
        let advice = if resume {
            "it holds no manifest of a run to resume; choose an empty --out"
        } else {
            "pass --resume to continue that run, or choose an empty --out"
        };
        Err(Error::Request(format!(
            "{} already contains {what}; {advice}",
            out.display()
        )))
    };
    if plan.spec.workers == 1 {
        for entry in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
            let name = entry.map_err(|e| Error::io(out, e))?.file_name();
            let name = name.to_string_lossy();
            if !is_lock_file(&name) {
                return not_empty(format!("'{name}' (it is not empty)"));
            }
        }
        return Ok(());
    }
    let mine = manifest_path(out, worker, plan.spec.workers);
    if mine.exists() || out.join(MANIFEST).exists() {
        return not_empty("a manifest for this corpus".into());
    }
    if let Some(j) = plan
        .shards_of(worker)
        .find(|j| out.join(shard_file_name(*j)).exists())
    {
        return not_empty(shard_file_name(j));
    }
    Ok(())
}

/// With --resume: keeps the finished shards whose checksums still match, and refuses a
/// directory that holds a different corpus.
fn resume_manifest(out: &Path, plan: Manifest, path: &Path) -> Result<Manifest> {
    let existing = Manifest::load(path)?;
    let (was, now) = (
        existing.spec.generator_revision,
        plan.spec.generator_revision,
    );
    if was != now {
        return Err(Error::Request(format!(
            "cannot resume: {} was written by generator revision {was}, and this s2kit writes revision {now}, whose samples differ; use a new --out",
            path.display()
        )));
    }
    if !existing.same_corpus(&plan) {
        return Err(Error::Request(format!(
            "cannot resume: {} describes a different corpus (seed {}, {} samples, shard size {}, {} workers, or another preset/length/compression); use the original arguments or a new --out",
            path.display(),
            existing.spec.seed,
            existing.spec.samples,
            existing.spec.shard_size,
            existing.spec.workers
        )));
    }
    let mut kept = plan;
    for entry in existing.shards {
        let file = out.join(&entry.file);
        if file.exists() && sha256_file(&file)? == entry.sha256 {
            kept.shards.push(entry);
        }
    }
    Ok(kept)
}
