//! Time of one SymTime pretraining step (all forward passes, backward, AdamW with clipping,
//! EMA and queue update) on a synthetic batch.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo run --release --example pretrain_step -- recipes/pretrain-tiny.toml [batch] [tokens] [steps]`
//! (`-- --vocab` prints the tokenizer's vocabulary size, which `benches/pytorch_step.py` needs.)
//! Prints the configuration and the mean milliseconds per step after 2 warm-up steps. The
//! batch is random: series ~ N(0,1), token sequences of the given length with [CLS]/[SEP], 40%
//! of the patches masked and 15% of the tokens scored, as in pretraining.

use candle_core::{DType, Device, Tensor};
use s2kit::pretrain::{Objective, ObjectiveConfig, PairBatch, PretrainRecipe, Progress, SymTime};
use s2kit::rng::sample_rng;
use s2kit::symbolic::tokens::{vocab_size, CLS, SEP};
use s2kit::train::AdamW;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    s2kit::runtime::configure();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--vocab") {
        println!("{}", vocab_size()); // for the PyTorch twin of this benchmark
        return Ok(());
    }
    let recipe = PretrainRecipe::from_file(std::path::Path::new(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("recipes/pretrain-tiny.toml"),
    ))?;
    let batch_size: usize = args
        .get(2)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(recipe.train.batch_size);
    let tokens: usize = args.get(3).map(|a| a.parse()).transpose()?.unwrap_or(48);
    let steps: usize = args.get(4).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let dev = Device::Cpu;
    let ObjectiveConfig::SymTime(objectives) = &recipe.objectives else {
        return Err("this benchmark times the symtime objective; give a symtime recipe".into());
    };
    let model = SymTime::new(&recipe.model, objectives, &dev)?;
    model.init(&mut sample_rng(0, 0))?;
    let mut opt = AdamW::new(model.trainable(), recipe.train.weight_decay)?;

    let (l, n) = (recipe.model.series.length, recipe.model.series.patches());
    let ids: Vec<u32> = (0..batch_size * tokens)
        .map(|i| match i % tokens {
            0 => CLS,
            j if j == tokens - 1 => SEP,
            _ => 4 + (i as u32 * 7919) % (vocab_size() as u32 - 4),
        })
        .collect();
    let token_ids = Tensor::from_vec(ids, (batch_size, tokens), &dev)?;
    let mask: Vec<f32> = (0..batch_size * n)
        .map(|i| if i % 5 < 2 { 1.0 } else { 0.0 })
        .collect();
    let batch = PairBatch {
        series: Tensor::randn(0f32, 1.0, (batch_size, l), &dev)?,
        patch_valid: Tensor::ones((batch_size, n), DType::F32, &dev)?,
        patch_mask: Tensor::from_vec(mask, (batch_size, n), &dev)?,
        mlm_input: token_ids.clone(),
        tokens: token_ids,
        token_valid: Tensor::ones((batch_size, tokens), DType::F32, &dev)?,
        mlm_scored: (0..(batch_size * tokens) as u32)
            .filter(|i| i % 7 == 3)
            .collect(),
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let s = &recipe.model.series.transformer;
    println!(
        "candle: d_model {} layers {} heads {} d_ff {}, batch {batch_size}, {} patches + {tokens} tokens, threads {threads}",
        s.d_model, s.layers, s.heads, s.d_ff, n
    );
    let mut times = Vec::new();
    for step in 0..steps + 2 {
        let t = Instant::now();
        let at = Progress {
            step,
            steps: steps + 2,
        };
        let (grads, _, enqueue) = model.gradients(&batch, at, &mut sample_rng(0, 1))?;
        opt.step(&grads, 1e-4, 1.0)?;
        model.after_step(enqueue, at)?;
        if step >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!("candle ms/step {mean:.1}");
    Ok(())
}
