//! Generator throughput, in accepted samples per second, at 1 and 2 threads.
//!
//! Run: `cargo run --release --example generator_throughput -- [samples]`
//!
//! For each preset it measures (a) generation alone, samples collected in memory with rayon,
//! and (b) the whole pipeline, `generate_corpus` writing lzf shards (with checksums) to a
//! temporary directory. Seeds and sample ids are the same at every thread count, so the
//! work is identical.

use rayon::prelude::*;
use s2kit::generate::{generate_corpus, GenerateRequest, Generator};
use s2kit::preset::GeneratorConfig;
use s2kit::store::{Compression, Outcome};
use std::path::Path;
use std::time::Instant;

fn in_memory(cfg: &GeneratorConfig, samples: u64, threads: usize) -> (u64, f64) {
    let generator = Generator::new(cfg).expect("valid preset");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let t = Instant::now();
    let ok = pool.install(|| {
        (0..samples)
            .into_par_iter()
            .filter(|id| matches!(generator.generate(7, *id), Outcome::Accepted(..)))
            .count() as u64
    });
    (ok, t.elapsed().as_secs_f64())
}

fn pipeline(cfg: &GeneratorConfig, samples: u64, threads: usize) -> (u64, f64) {
    let dir = std::env::temp_dir().join(format!("s2kit-bench-{}-{threads}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let req = GenerateRequest {
        config: cfg.clone(),
        seed: 7,
        samples,
        shard_size: (samples / 8).max(1),
        out: dir.clone(),
        worker: 0,
        workers: 1,
        resume: false,
        compression: Compression::ShuffleLzf,
        threads,
    };
    let summary = generate_corpus(&req, &|_| {}).expect("generation succeeds");
    let _ = std::fs::remove_dir_all(&dir);
    (summary.accepted, summary.seconds)
}

fn main() {
    let samples: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40_000);
    let presets = [
        ("1 -> 1 (generators/s2.toml)", "generators/s2.toml", 1u64),
        (
            "1-6 -> 1-12 (generators/s2-multidim.toml)",
            "generators/s2-multidim.toml",
            4,
        ),
    ];
    println!("L = 256, seed 7; ok-samples/s = accepted samples / wall seconds");
    for (label, path, divisor) in presets {
        let cfg = GeneratorConfig::from_file(Path::new(path)).expect("preset loads");
        let n = samples / divisor;
        println!("\n{label}, {n} sample ids");
        for (name, run) in [
            (
                "in memory",
                in_memory as fn(&GeneratorConfig, u64, usize) -> (u64, f64),
            ),
            ("to HDF5", pipeline),
        ] {
            let mut rates = Vec::new();
            for threads in [1, 2] {
                let (ok, secs) = run(&cfg, n, threads);
                let rate = ok as f64 / secs;
                rates.push(rate);
                println!("  {name:>9}, {threads} thread(s): {ok} ok in {secs:.2} s = {rate:.0} ok-samples/s");
            }
            println!(
                "  {name:>9}: speed-up 1 -> 2 threads {:.2}x",
                rates[1] / rates[0]
            );
        }
    }
}
