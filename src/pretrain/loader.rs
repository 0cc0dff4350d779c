//! Streaming training pairs from a corpus. A pair is one output channel y_j of a sample,
//! windowed to the model length L (a random crop when the corpus is longer), with the tokens
//! of its own expression (for ODE samples, its right-hand side). Inputs x are not used.
//!
//! A background thread reads shards (in a seeded order per epoch), fills a shuffle buffer
//! and sends ready batches through a bounded channel, so memory is flat in the corpus size
//! and reading overlaps training. The order depends only on the seed; resuming skips the
//! batches already consumed.

use crate::error::{Error, Result};
use crate::rng::sample_rng;
use crate::store::Corpus;
use crate::symbolic::tokens::Tokenizer;
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The window, length L; values past `valid_len` are padding.
    pub window: Vec<f32>,
    pub valid_len: usize,
    pub tokens: Vec<u32>,
}

pub struct LoaderConfig {
    pub length: usize,
    /// The symbol length the model reads; `None`: the objective reads no symbols, and the
    /// pairs carry no tokens.
    pub max_tokens: Option<usize>,
    pub batch_size: usize,
    pub shuffle_buffer: usize,
    pub prefetch_batches: usize,
    pub seed: u64,
    /// Batches to skip (already trained on before a resume).
    pub skip_batches: u64,
}

pub struct PairStream {
    rx: Receiver<Result<Vec<Pair>>>,
    _worker: JoinHandle<()>,
}

impl PairStream {
    pub fn open(corpus: Corpus, cfg: LoaderConfig) -> Result<PairStream> {
        if corpus.manifest.spec.length < cfg.length {
            return Err(Error::corpus(
                &corpus.dir,
                format!("series of length {} are shorter than the model window {}; generate with --length {} or more", corpus.manifest.spec.length, cfg.length, cfg.length),
            ));
        }
        if corpus.manifest.shards.iter().all(|s| s.samples == 0) {
            return Err(Error::corpus(&corpus.dir, "the corpus holds no samples"));
        }
        let (tx, rx) = sync_channel(cfg.prefetch_batches.max(1));
        let worker = std::thread::spawn(move || {
            if let Err(e) = produce(&corpus, &cfg, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        Ok(PairStream {
            rx,
            _worker: worker,
        })
    }

    pub fn next_batch(&mut self) -> Result<Vec<Pair>> {
        self.rx
            .recv()
            .map_err(|_| Error::Other("the data loader stopped unexpectedly".into()))?
    }
}

/// Runs until the receiver hangs up; sends `Err` and stops on a bad shard.
fn produce(
    corpus: &Corpus,
    cfg: &LoaderConfig,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<Pair>>>,
) -> Result<()> {
    let tokenizer = Tokenizer::default();
    let mut rng = sample_rng(cfg.seed, 0x6c6f_6164_6572); // "loader"
    let mut buffer: Vec<Pair> = Vec::with_capacity(cfg.shuffle_buffer);
    let mut batch = Vec::with_capacity(cfg.batch_size);
    let mut sent = 0u64;
    let mut emit = |pair: Pair, batch: &mut Vec<Pair>| -> bool {
        batch.push(pair);
        if batch.len() == cfg.batch_size {
            let ready = std::mem::replace(batch, Vec::with_capacity(cfg.batch_size));
            sent += 1;
            if sent > cfg.skip_batches && tx.send(Ok(ready)).is_err() {
                return false; // training finished
            }
        }
        true
    };
    loop {
        let mut order: Vec<usize> = (0..corpus.manifest.shards.len()).collect();
        order.shuffle(&mut rng);
        for i in order {
            let shard = corpus.read_shard(i)?;
            for row in 0..shard.symbols.len() {
                let start = row * shard.length;
                let series = &shard.outputs[start..start + shard.length];
                let offset = rng.random_range(0..=shard.length - cfg.length);
                let tokens = match cfg.max_tokens {
                    Some(max) => tokenizer.encode(&shard.symbols[row], max)?,
                    None => Vec::new(),
                };
                let pair = Pair {
                    window: series[offset..offset + cfg.length].to_vec(),
                    valid_len: cfg.length,
                    tokens,
                };
                if buffer.len() < cfg.shuffle_buffer.max(1) {
                    buffer.push(pair);
                    continue;
                }
                let k = rng.random_range(0..buffer.len());
                let out = std::mem::replace(&mut buffer[k], pair);
                if !emit(out, &mut batch) {
                    return Ok(());
                }
            }
        }
    }
}
