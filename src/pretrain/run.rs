//! The pretraining run: `s2kit pretrain`. A run directory holds `recipe.toml` (a copy),
//! `metrics.csv` (one row per step), `losses.png`, `checkpoint/` (the whole model, optimiser
//! state, step and recipe; see `train::checkpoint`) and the exported series encoder
//! (`encoder.json`, `encoder.safetensors`), which `s2kit transfer --model RUN_DIR` reads.

use super::batch::{collate, MaskConfig};
use super::loader::{LoaderConfig, PairStream};
use super::model::{Losses, SymTime};
use super::recipe::PretrainRecipe;
use crate::digest::sha256_file;
use crate::error::{Action, Error, Result};
use crate::lock::lock_dir;
use crate::model::{export_encoder, params, EncoderConfig};
use crate::plot::{render_panels, Panel};
use crate::rng::sample_rng;
use crate::store::{Corpus, MANIFEST};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::{learning_rate, AdamW};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct PretrainRequest {
    pub recipe: PretrainRecipe,
    /// Where the model trains (`runtime::device`); the data pipeline stays on the CPU.
    pub device: Device,
    pub data: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
    /// Stop (with a checkpoint) after this step, as a job with a time limit would.
    pub stop_at: Option<usize>,
}

pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub losses: Losses,
    pub pairs_per_second: f64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    step: usize,
    recipe: PretrainRecipe,
    /// SHA-256 of the corpus's `manifest.json`: a resumed run must read the same corpus.
    corpus: String,
}

#[derive(Debug)]
pub struct PretrainSummary {
    pub first_step: usize,
    pub last_step: usize,
    /// The losses of the last step trained; `None` when the run was already finished.
    pub final_losses: Option<Losses>,
    pub seconds: f64,
}

/// What a run directory's latest checkpoint says it was made from, and how far it got.
#[derive(Debug, PartialEq)]
pub struct RunRecord {
    pub recipe: PretrainRecipe,
    /// SHA-256 of the corpus manifest it trained on.
    pub corpus: String,
    pub step: usize,
}

/// The record of the run in `out`, or `None` when it has no checkpoint yet. A damaged
/// checkpoint is an error.
pub fn recorded_run(out: &Path) -> Result<Option<RunRecord>> {
    let Some(dir) = checkpoint::latest(out) else {
        return Ok(None);
    };
    let saved: Checkpoint<CheckpointMeta> = checkpoint::load(&dir)?;
    Ok(Some(RunRecord {
        recipe: saved.state.recipe,
        corpus: saved.state.corpus,
        step: saved.state.step,
    }))
}

const METRICS_HEADER: &str =
    "step,lr,loss,mpm,mlm,itc,retrieval_top1,temperature,alpha,grad_norm,pairs_per_s";

/// Keeps the header and the rows up to `step` (rows past a resumed checkpoint are redone).
fn open_metrics(path: &Path, keep_up_to: usize) -> Result<std::fs::File> {
    let kept: Vec<String> = match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .skip(1)
            .filter(|l| {
                l.split(',')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_some_and(|s| s <= keep_up_to)
            })
            .map(String::from)
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    writeln!(f, "{METRICS_HEADER}").map_err(|e| Error::io(path, e))?;
    for line in kept {
        writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    }
    Ok(f)
}

/// Plots the loss columns of `metrics.csv` to `losses.png`.
pub fn plot_losses(run: &Path) -> Result<()> {
    let path = run.join("metrics.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f32::NAN))
                .collect()
        })
        .collect();
    let column = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<f32>>();
    let panels: Vec<Panel> = [
        (2, "total loss"),
        (3, "masked-patch MSE"),
        (4, "masked-symbol CE"),
        (5, "contrastive (InfoNCE)"),
        (6, "series-to-symbol top-1 retrieval in the batch"),
        (7, "temperature"),
    ]
    .iter()
    .map(|(i, title)| Panel {
        title: format!("{title} vs step"),
        series: vec![column(*i)],
    })
    .collect();
    render_panels(&run.join("losses.png"), &panels, 2, (520, 300))
}

pub fn pretrain(req: &PretrainRequest, progress: &dyn Fn(&StepReport)) -> Result<PretrainSummary> {
    let recipe = &req.recipe;
    recipe.validate()?;
    let t = &recipe.train;
    let out = req.out.as_path();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = lock_dir(out, None)?;
    let existing = checkpoint::latest(out);
    if existing.is_some() && !req.resume {
        return Err(Error::Request(format!(
            "{} already holds a run; pass --resume to continue it, or choose a new --out",
            out.display()
        )));
    }
    let corpus = Corpus::open(&req.data)?;
    let corpus_digest = sha256_file(&corpus.dir.join(MANIFEST))?;
    let device = req.device.clone();
    let model = SymTime::new(&recipe.model, &recipe.objectives, &device)?;
    let mut opt = AdamW::new(model.trainable(), t.weight_decay)?;
    let first_step = match existing.filter(|_| req.resume) {
        Some(dir) => {
            let saved: Checkpoint<CheckpointMeta> = checkpoint::load(&dir)?;
            if saved.state.recipe != *recipe {
                return Err(Error::Request(format!("cannot resume {}: the recipe differs from the one it was started with (see its recipe.toml)", out.display())));
            }
            if saved.state.corpus != corpus_digest {
                return Err(Error::Request(format!(
                    "cannot resume {}: it was trained on another corpus than {} (its manifest differs); pass the original --data",
                    out.display(),
                    req.data.display()
                )));
            }
            if let Some(stop) = req.stop_at.filter(|&s| s < saved.state.step) {
                return Err(Error::Request(format!(
                    "--stop-at {stop}: {} is already at step {} of {}; nothing to train",
                    out.display(),
                    saved.state.step,
                    t.steps
                )));
            }
            saved.restore("online", &model.online, &device)?;
            saved.restore("state", &model.momentum.state, &device)?;
            opt.load_state(&saved.tensors("optimizer", &device)?)
                .map_err(Error::checkpoint(Action::Loading, &dir))?;
            saved.state.step
        }
        None => {
            model.init(&mut sample_rng(t.seed, 0x696e_6974))?; // "init"
            let path = out.join("recipe.toml");
            let text = toml::to_string_pretty(recipe)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
            0
        }
    };
    let mut metrics = open_metrics(&out.join("metrics.csv"), first_step)?;
    let mut stream = PairStream::open(
        corpus,
        LoaderConfig {
            length: recipe.model.series.length,
            max_tokens: recipe.model.symbol.max_tokens,
            batch_size: t.batch_size,
            shuffle_buffer: t.shuffle_buffer,
            prefetch_batches: t.prefetch_batches,
            seed: t.seed,
            skip_batches: first_step as u64,
        },
    )?;
    let masks = MaskConfig {
        patch: recipe.model.series.patch,
        mask_ratio: recipe.objectives.mask_ratio,
        mlm_prob: recipe.objectives.mlm_prob,
    };
    let save = |step: usize, opt: &AdamW| -> Result<()> {
        let groups = [
            ("online", params::tensors(&model.online)),
            ("state", params::tensors(&model.momentum.state)),
            ("optimizer", opt.state()?),
        ];
        let state = CheckpointMeta {
            step,
            recipe: recipe.clone(),
            corpus: corpus_digest.clone(),
        };
        checkpoint::save(out, &groups, &state)
    };
    let started = Instant::now();
    let last_step = req.stop_at.unwrap_or(t.steps).min(t.steps);
    let mut final_losses = None;
    for step in first_step..last_step {
        let tick = Instant::now();
        let pairs = stream.next_batch()?;
        let mut rng = sample_rng(t.seed, (1 << 40) | step as u64);
        let batch = collate(&pairs, &masks, &mut rng, &device)?;
        let o = &recipe.objectives;
        let alpha = o.alpha * ((step + 1) as f64 / o.alpha_ramp_steps.max(1) as f64).min(1.0);
        let (grads, losses, enqueue) = model.gradients(&batch, alpha)?;
        if !losses.total.is_finite() {
            let kept = checkpoint::latest(out)
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "none yet".into());
            return Err(Error::Other(format!(
                "training stopped: the loss became {} at step {} (MPM {}, MLM {}, contrastive {}); the last checkpoint ({kept}) is intact. Lower train.lr or check the corpus.",
                losses.total, step + 1, losses.mpm, losses.mlm, losses.itc
            )));
        }
        let lr = learning_rate(step, t.lr, t.min_lr, t.warmup_steps, t.steps);
        let grad_norm = opt.step(&grads, lr, t.clip_norm)?;
        model.after_step(&enqueue)?;
        let rate = pairs.len() as f64 / tick.elapsed().as_secs_f64();
        let temperature = model.temperature()?;
        writeln!(
            metrics,
            "{},{lr:.6e},{},{},{},{},{:.4},{temperature:.5},{alpha:.4},{grad_norm:.5},{rate:.1}",
            step + 1,
            losses.total,
            losses.mpm,
            losses.mlm,
            losses.itc,
            losses.retrieval
        )
        .map_err(|e| Error::io(out.join("metrics.csv"), e))?;
        final_losses = Some(losses);
        progress(&StepReport {
            step: step + 1,
            steps: t.steps,
            losses,
            pairs_per_second: rate,
        });
        if (step + 1) % t.checkpoint_every == 0 || step + 1 == last_step {
            save(step + 1, &opt)?;
        }
    }
    metrics
        .flush()
        .map_err(|e| Error::io(out.join("metrics.csv"), e))?;
    export_encoder(
        out,
        &EncoderConfig::PatchTransformer(recipe.model.series.clone()),
        &model.online,
        "series",
    )?;
    plot_losses(out)?;
    Ok(PretrainSummary {
        first_step,
        last_step,
        final_losses,
        seconds: started.elapsed().as_secs_f64(),
    })
}
