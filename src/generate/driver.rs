//! The parallel driver, scheduling only: generates this worker's shards with rayon, stages
//! each finished shard on the same pool (compressed, built as an HDF5 file, checksummed and
//! written under a temporary name) while the next is generated, and streams it to a writer
//! thread (`store::CorpusWriter`) that makes it durable and lists it in the manifest.
//! Memory is bounded by a few shards, never by the corpus size.

use super::sample::Generator;
use crate::error::{Error, Result};
use crate::preset::GeneratorConfig;
use crate::store::{
    Compression, CorpusSpec, CorpusWriter, Outcome, PackedShard, Rejections, StagedShard,
    MAX_SHARDS,
};
use rayon::prelude::*;
use std::path::PathBuf;
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
    /// The rejected candidates by reason.
    pub rejections: Rejections,
    pub seconds: f64,
    /// Seconds the writer thread spent storing shards (fsync, rename, manifest; the pool
    /// compresses, builds, checksums and writes them). It overlaps generation; near
    /// `seconds`, the writer is the bottleneck.
    pub writer_seconds: f64,
    /// Sample ids this run had to generate (excluding resumed shards).
    pub ids_generated: u64,
}

/// The most generation threads one process may start.
pub const MAX_THREADS: usize = 1024;
/// What the shards in flight (one being generated, one being staged, and its file image) may
/// hold.
const SHARD_MEMORY_BUDGET: u64 = 16 << 30;

impl GenerateRequest {
    fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::Request("--samples must be at least 1".into()));
        }
        if self.shard_size == 0 {
            return Err(Error::Request("--shard-size must be at least 1".into()));
        }
        if self.samples.div_ceil(self.shard_size) > MAX_SHARDS {
            return Err(Error::Request(format!(
                "--samples {} in shards of {} makes more than {MAX_SHARDS} shards; raise --shard-size",
                self.samples, self.shard_size
            )));
        }
        if self.threads > MAX_THREADS {
            return Err(Error::Request(format!(
                "--threads {} is more than {MAX_THREADS}",
                self.threads
            )));
        }
        self.config.validate()?;
        // Every channel of every sample of three shards, at 4 bytes a value.
        let channels = (self.config.dims.inputs[1] + self.config.dims.outputs[1]) as u64;
        let per_sample = 4 * channels * self.config.length as u64;
        let in_flight = 3u64
            .saturating_mul(self.shard_size.min(self.samples))
            .saturating_mul(per_sample);
        if in_flight > SHARD_MEMORY_BUDGET {
            return Err(Error::Request(format!(
                "shards of {} samples of length {} would hold about {} GiB in memory (three are in flight; the limit is {} GiB); lower --shard-size or --length",
                self.shard_size.min(self.samples),
                self.config.length,
                in_flight >> 30,
                SHARD_MEMORY_BUDGET >> 30
            )));
        }
        if self.workers == 0 {
            return Err(Error::Request("--workers must be at least 1".into()));
        }
        if self.worker >= self.workers {
            return Err(Error::Request(format!(
                "--worker {} is out of range: worker indices run from 0 to {} for --workers {}",
                self.worker,
                self.workers - 1,
                self.workers
            )));
        }
        Ok(())
    }

    /// The corpus this request describes, as its manifest records it.
    pub fn spec(&self) -> Result<CorpusSpec> {
        Ok(CorpusSpec {
            seed: self.seed,
            samples: self.samples,
            shard_size: self.shard_size,
            length: self.config.length,
            compression: self.compression,
            workers: self.workers,
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::Other(format!("preset is not storable as JSON: {e}")))?,
            generator_revision: GENERATOR_REVISION,
        })
    }
}

/// Bumped whenever the same (seed, id, preset) would give a different sample. 2: KernelSynth's
/// periodic kernels are drawn by an angle-addition recurrence (values move in the last bits).
/// 3: expressions and the ODE step control use the libm crate's functions instead of the
/// platform's, and powers are products (ODE trajectories move; explicit outputs only where a
/// last bit crosses an f32 rounding).
pub const GENERATOR_REVISION: u32 = 3;

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
    let mut writer = CorpusWriter::open(&req.out, &req.spec()?, req.worker, req.resume)?;
    let todo = writer.todo();
    let mut summary = GenerateSummary {
        shards_skipped: writer.finished() as u64,
        ids_generated: todo.iter().map(|&j| writer.ids(j).count() as u64).sum(),
        ..Default::default()
    };
    progress(Progress::Planned(summary.ids_generated));
    let generator = Generator::new(&req.config)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(req.threads)
        .build()
        .map_err(|e| Error::Other(format!("cannot start {} threads: {e}", req.threads)))?;
    let ranges: Vec<(u64, std::ops::Range<u64>)> =
        todo.iter().map(|&j| (j, writer.ids(j))).collect();

    std::thread::scope(|scope| -> Result<()> {
        let layout = writer.layout();
        let stager = writer.stager();
        let (tx, rx) = sync_channel::<StagedShard>(1);
        let summary_w = &mut summary;
        let writer = &mut writer;
        let writing = scope.spawn(move || -> Result<()> {
            for staged in rx {
                let started = Instant::now();
                let entry = writer.store(staged)?;
                summary_w.writer_seconds += started.elapsed().as_secs_f64();
                summary_w.shards_written += 1;
                summary_w.accepted += entry.samples;
                summary_w.failed += entry.failed;
                summary_w.rejected += entry.rejected;
                summary_w.rejections.add(&entry.rejections);
            }
            Ok(())
        });
        let generate = |ids: std::ops::Range<u64>| {
            let outcomes: Vec<Outcome> = ids
                .into_par_iter()
                .map(|id| {
                    let outcome = generator.generate(req.seed, id);
                    progress(Progress::SampleDone);
                    outcome
                })
                .collect();
            PackedShard::pack(&outcomes, layout)
        };
        // Shard j is staged (built, checksummed, written) while shard j+1 is generated, both
        // on the pool, whose threads share the two by stealing work; one more round with
        // nothing to generate stages the last shard.
        let mut packed: Option<(u64, PackedShard)> = None;
        for next in ranges.into_iter().map(Some).chain([None]) {
            let (staged, generated) = pool.install(|| {
                rayon::join(
                    || packed.take().map(|(j, s)| stager.stage(j, &s)).transpose(),
                    || {
                        next.map(|(j, ids)| generate(ids).map(|s| (j, s)))
                            .transpose()
                    },
                )
            });
            if let Some(staged) = staged? {
                if tx.send(staged).is_err() {
                    break; // the writer stopped on an error, reported below
                }
            }
            packed = generated?;
        }
        drop(tx);
        writing
            .join()
            .map_err(|_| Error::Other("shard writer thread panicked".into()))?
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    // Judged on the whole share (resumed shards included), once it is complete.
    if let Some((failed, rejected)) = writer.complete_and_empty() {
        return Err(Error::Request(format!(
            "{}: every one of the {failed} samples failed: each ran out of its {} candidates ({rejected} rejected in all), so the shards hold nothing; loosen the preset's [validation] or check its ranges (`s2kit inspect` counts the rejections)",
            req.out.display(),
            req.config.validation.max_attempts,
        )));
    }
    Ok(summary)
}
