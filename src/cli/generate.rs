use super::progress;
use clap::Args;
use s2kit::generate::{generate_corpus, GenerateRequest, Progress};
use s2kit::preset::GeneratorConfig;
use s2kit::store::{merge as merge_parts, Compression};
use s2kit::Result;
use std::path::PathBuf;

/// Generate a corpus of series-symbol samples into HDF5 shards.
///
/// Sample k of seed S is a pure function of (S, k, preset): the stored series are identical
/// whatever --threads, --shard-size or --worker/--workers split is used.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Generator preset (TOML), e.g. generators/s2.toml.
    #[arg(long)]
    config: PathBuf,
    /// Number of sample ids to generate (ids 0..samples).
    #[arg(long)]
    samples: u64,
    /// Output directory; must be empty unless --resume.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Series length L (overrides the preset's `length`).
    #[arg(long)]
    length: Option<usize>,
    /// Sample ids per shard file.
    #[arg(long, default_value_t = 10_000)]
    shard_size: u64,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// This process's index among --workers (0-based).
    #[arg(long, default_value_t = 0)]
    worker: u32,
    /// Number of processes sharing the corpus; each writes every workers-th shard and its own
    /// manifest part; `s2kit merge` joins the parts.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Continue an interrupted run: finished shards are verified and kept.
    #[arg(long)]
    resume: bool,
    /// Chunk filter, each readable by h5py without plugins: shuffle-lzf (default), lzf, gzip,
    /// shuffle-gzip, none.
    #[arg(long, default_value = "shuffle-lzf")]
    compression: Compression,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let mut config = GeneratorConfig::from_file(&a.config)?;
    if let Some(len) = a.length {
        config.length = len;
    }
    let req = GenerateRequest {
        config,
        seed: a.seed,
        samples: a.samples,
        shard_size: a.shard_size,
        out: a.out.clone(),
        worker: a.worker,
        workers: a.workers,
        resume: a.resume,
        compression: a.compression,
        threads: a.threads,
    };
    let pb = progress::bar(0, "samples");
    let summary = generate_corpus(&req, &|event| match event {
        Progress::Planned(n) => pb.set_length(n),
        Progress::SampleDone => pb.inc(1),
    })?;
    pb.finish_and_clear();
    let rate = summary.ids_generated as f64 / summary.seconds.max(1e-9);
    if a.json {
        let v = serde_json::json!({
            "out": a.out, "shards_written": summary.shards_written, "shards_skipped": summary.shards_skipped,
            "accepted": summary.accepted, "failed": summary.failed, "rejected_candidates": summary.rejected,
            "rejections": summary.rejections, "seconds": summary.seconds, "ids_per_second": rate,
            "writer_seconds": summary.writer_seconds,
            "writer_share": summary.writer_seconds / summary.seconds.max(1e-9),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
    } else {
        println!(
            "{}: wrote {} shard(s), kept {} finished; {} samples accepted, {} failed, {} candidates rejected; {:.1} s ({:.0} samples/s)",
            a.out.display(),
            summary.shards_written,
            summary.shards_skipped,
            summary.accepted,
            summary.failed,
            summary.rejected,
            summary.seconds,
            rate
        );
        if a.workers > 1 {
            println!(
                "worker {} of {} done; run `s2kit merge {}` once all workers have finished",
                a.worker,
                a.workers,
                a.out.display()
            );
        }
    }
    Ok(())
}

/// Join the manifest parts written by --worker/--workers runs into one manifest.json.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shared output directory of all workers.
    corpus: PathBuf,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let m = merge_parts(&a.corpus)?;
    let samples: u64 = m.shards.iter().map(|s| s.samples).sum();
    println!(
        "{}: merged {} worker parts into manifest.json ({} shards, {} samples)",
        a.corpus.display(),
        m.spec.workers,
        m.shards.len(),
        samples
    );
    Ok(())
}
