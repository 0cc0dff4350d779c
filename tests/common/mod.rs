//! Helpers shared by the integration tests.
// Each test crate compiles this module and uses only some of it.
#![allow(dead_code)]

use s2kit::generate::{generate_corpus, GenerateRequest};
use s2kit::preset::GeneratorConfig;
use s2kit::store::{Compression, Corpus, Sample};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// A small, fast configuration that exercises explicit and ODE samples and several dims.
pub fn small_config() -> GeneratorConfig {
    let mut cfg = GeneratorConfig {
        length: 64,
        ..Default::default()
    };
    cfg.dims.inputs = [1, 3];
    cfg.dims.outputs = [1, 3];
    cfg.kinds.ode = 0.3;
    cfg
}

pub fn request(out: &Path, samples: u64, shard_size: u64, threads: usize) -> GenerateRequest {
    GenerateRequest {
        config: small_config(),
        seed: 11,
        samples,
        shard_size,
        out: out.to_path_buf(),
        worker: 0,
        workers: 1,
        resume: false,
        compression: Compression::ShuffleLzf,
        threads,
    }
}

pub fn generate(req: &GenerateRequest) {
    generate_corpus(req, &|_| {}).expect("generation succeeds");
}

/// Every sample of a finished corpus, by id.
pub fn samples_by_id(dir: &Path) -> BTreeMap<u64, Sample> {
    let corpus = Corpus::open(dir).expect("corpus opens");
    let mut out = BTreeMap::new();
    for i in 0..corpus.manifest.shards.len() {
        let shard = corpus.read_shard(i).expect("shard reads");
        for k in 0..shard.n_samples() {
            let s = shard.sample(k);
            out.insert(s.id, s);
        }
    }
    out
}

/// Runs the `s2kit` binary with `args`.
pub fn s2kit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s2kit"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Asserts a clean failure whose message names `needle`.
pub fn fails_with(out: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        stderr.contains(needle),
        "error does not name '{needle}': {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
}

/// Inverts one byte in the middle of `path` (same size, different content).
pub fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}
