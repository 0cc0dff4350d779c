//! The parallel driver: generates this worker's shards with rayon and streams each finished
//! shard to a writer thread, so generation of shard j+1 overlaps the compression and writing
//! of shard j. Memory is bounded by a few shards, never by the corpus size.

use super::sample::{Generator, Outcome};
use crate::error::{Error, Result};
use crate::preset::GeneratorConfig;
use crate::store::{
    manifest_path, sha256_file, shard_file_name, write_shard, Compression, Manifest, ShardEntry,
    ShardMeta, FORMAT_VERSION, MANIFEST,
};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub config: GeneratorConfig,
    pub seed: u64,
    pub samples: u64,
    pub shard_size: u64,
    pub out: PathBuf,
    pub worker: u32,
    pub workers: u32,
    pub resume: bool,
    pub compression: Compression,
    /// Rayon threads; 0 means one per core.
    pub threads: usize,
}

#[derive(Clone, Debug, Default)]
pub struct GenerateSummary {
    pub shards_written: u64,
    pub shards_skipped: u64,
    pub accepted: u64,
    pub failed: u64,
    pub rejected: u64,
    pub seconds: f64,
    /// Sample ids this run had to generate (excluding resumed shards).
    pub ids_generated: u64,
}

impl GenerateRequest {
    fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::Usage("--samples must be at least 1".into()));
        }
        if self.shard_size == 0 {
            return Err(Error::Usage("--shard-size must be at least 1".into()));
        }
        if self.workers == 0 {
            return Err(Error::Usage("--workers must be at least 1".into()));
        }
        if self.worker >= self.workers {
            return Err(Error::Usage(format!(
                "--worker {} is out of range: worker indices run from 0 to {} for --workers {}",
                self.worker,
                self.workers - 1,
                self.workers
            )));
        }
        self.config.validate()
    }

    fn empty_manifest(&self) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            seed: self.seed,
            samples: self.samples,
            shard_size: self.shard_size,
            length: self.config.length,
            compression: self.compression,
            workers: self.workers,
            worker: (self.workers > 1).then_some(self.worker),
            config: self.config.clone(),
            shards: Vec::new(),
        }
    }
}

/// Creates `out` and proves it is writable before any work is done.
fn prepare_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let probe = out.join(".s2kit-write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::io(out, e))?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

/// Without --resume, refuses a directory that already holds this run's files. A single worker
/// wants an empty directory; among W workers, each only checks the files it would write.
fn check_fresh(out: &Path, plan: &Manifest, worker: u32) -> Result<()> {
    let not_empty = |what: String| {
        Err(Error::Usage(format!(
            "{} already contains {what}; pass --resume to continue that run, or choose an empty --out",
            out.display()
        )))
    };
    if plan.workers == 1 {
        let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
        if let Some(entry) = entries.next() {
            let name = entry.map_err(|e| Error::io(out, e))?.file_name();
            return not_empty(format!("'{}' (it is not empty)", name.to_string_lossy()));
        }
        return Ok(());
    }
    let mine = manifest_path(out, worker, plan.workers);
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
    if !path.exists() {
        return Ok(plan);
    }
    let existing = Manifest::load(path)?;
    if !existing.same_corpus(&plan) {
        return Err(Error::Usage(format!(
            "cannot resume: {} describes a different corpus (seed {}, {} samples, shard size {}, {} workers, or another preset/length/compression); use the original arguments or a new --out",
            path.display(),
            existing.seed,
            existing.samples,
            existing.shard_size,
            existing.workers
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

/// Progress notifications for a display; sent from worker threads.
pub enum Progress {
    /// The number of sample ids this run will generate.
    Planned(u64),
    SampleDone,
}

/// Generates this worker's shards of the corpus described by `req`.
pub fn generate_corpus(
    req: &GenerateRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<GenerateSummary> {
    req.validate()?;
    let started = Instant::now();
    let out = req.out.as_path();
    prepare_dir(out)?;
    let plan = req.empty_manifest();
    let path = manifest_path(out, req.worker, req.workers);
    let mut manifest = if req.resume {
        resume_manifest(out, plan, &path)?
    } else {
        check_fresh(out, &plan, req.worker)?;
        plan
    };
    manifest.save(&path)?;

    let done: Vec<u64> = manifest.shards.iter().map(|s| s.index).collect();
    let todo: Vec<u64> = manifest
        .shards_of(req.worker)
        .filter(|j| !done.contains(j))
        .collect();
    let ids_of = |j: &u64| ((j + 1) * req.shard_size).min(req.samples) - j * req.shard_size;
    let mut summary = GenerateSummary {
        shards_skipped: done.len() as u64,
        ids_generated: todo.iter().map(ids_of).sum(),
        ..Default::default()
    };
    progress(Progress::Planned(summary.ids_generated));
    let generator = Generator::new(&req.config)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(req.threads)
        .build()
        .map_err(|e| Error::Other(format!("cannot start {} threads: {e}", req.threads)))?;
    let config_json =
        serde_json::to_string(&req.config).map_err(|e| Error::Other(e.to_string()))?;
    let meta = ShardMeta {
        seed: req.seed,
        config_json: &config_json,
        length: req.config.length,
        compression: req.compression,
    };

    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<(u64, Vec<Outcome>)>(1);
        let manifest = &mut manifest;
        let summary_w = &mut summary;
        let writer = scope.spawn(move || -> Result<()> {
            for (index, outcomes) in rx {
                let entry = store_shard(
                    out,
                    index,
                    outcomes,
                    &meta,
                    manifest.shard_size,
                    manifest.samples,
                )?;
                summary_w.shards_written += 1;
                summary_w.accepted += entry.samples;
                summary_w.failed += entry.failed;
                summary_w.rejected += entry.rejected;
                manifest.shards.push(entry);
                manifest.shards.sort_by_key(|s| s.index);
                manifest.save(&path)?;
            }
            Ok(())
        });
        for index in &todo {
            let first = index * req.shard_size;
            let end = (first + req.shard_size).min(req.samples);
            let outcomes: Vec<Outcome> = pool.install(|| {
                (first..end)
                    .into_par_iter()
                    .map(|id| {
                        let outcome = generator.generate(req.seed, id);
                        progress(Progress::SampleDone);
                        outcome
                    })
                    .collect()
            });
            if tx.send((*index, outcomes)).is_err() {
                break; // the writer stopped on an error, reported below
            }
        }
        drop(tx);
        writer
            .join()
            .map_err(|_| Error::Other("shard writer thread panicked".into()))?
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn store_shard(
    out: &Path,
    index: u64,
    outcomes: Vec<Outcome>,
    meta: &ShardMeta,
    shard_size: u64,
    total: u64,
) -> Result<ShardEntry> {
    let mut samples = Vec::with_capacity(outcomes.len());
    let (mut failed, mut rejected) = (0u64, 0u64);
    for outcome in outcomes {
        match outcome {
            Outcome::Accepted(s) => {
                rejected += s.rejected as u64;
                samples.push(s);
            }
            Outcome::Failed { rejected: r, .. } => {
                failed += 1;
                rejected += r as u64;
            }
        }
    }
    let path = write_shard(out, index, &samples, failed, meta)?;
    let bytes = std::fs::metadata(&path)
        .map_err(|e| Error::io(&path, e))?
        .len();
    Ok(ShardEntry {
        index,
        file: shard_file_name(index),
        first_id: index * shard_size,
        end_id: ((index + 1) * shard_size).min(total),
        samples: samples.len() as u64,
        failed,
        rejected,
        bytes,
        sha256: sha256_file(&path)?,
    })
}
