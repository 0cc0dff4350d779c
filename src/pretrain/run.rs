//! The pretraining run: `s2kit pretrain`. A run directory holds `recipe.toml` (a copy),
//! `metrics.csv` (one row per step), `losses.png`, `checkpoint/` (the whole model, optimiser
//! state, step and recipe; see `train::checkpoint`) and the exported series encoder
//! (`encoder.json`, `encoder.safetensors`), which `s2kit transfer --model RUN_DIR` reads.
//! The loop is the same for every objective (`objective::Objective`); the recipe's
//! `objectives.kind` picks which one it trains.

use super::batch::{collate, MaskConfig};
use super::crosstimenet::CrossTimeNet;
use super::fei::Fei;
use super::loader::{LoaderConfig, PairStream};
use super::objective::{Objective, Progress, Report};
use super::recipe::{ObjectiveConfig, PretrainRecipe};
use super::symtime::SymTime;
use super::timemae::TimeMae;
use super::views::Views;
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

pub struct StepReport<'a> {
    pub step: usize,
    pub steps: usize,
    /// The names of `report.values`.
    pub columns: &'static [&'static str],
    pub report: &'a Report,
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
    /// The names of `final_report.values`.
    pub columns: &'static [&'static str],
    /// The report of the last step trained; `None` when the run was already finished.
    pub final_report: Option<Report>,
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

/// `metrics.csv`'s header: the step, its learning rate and weighted loss, the objective's
/// columns, the gradient norm and the throughput.
fn metrics_header(columns: &[&str]) -> String {
    format!("step,lr,loss,{},grad_norm,pairs_per_s", columns.join(","))
}

/// Keeps the header and the rows up to `step` (rows past a resumed checkpoint are redone).
fn open_metrics(path: &Path, header: &str, keep_up_to: usize) -> Result<std::fs::File> {
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
    writeln!(f, "{header}").map_err(|e| Error::io(path, e))?;
    for line in kept {
        writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    }
    Ok(f)
}

/// Plots the loss and every objective column of `metrics.csv` (those between `loss` and
/// `grad_norm`) to `losses.png`.
pub fn plot_losses(run: &Path) -> Result<()> {
    let path = run.join("metrics.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f32>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f32::NAN))
                .collect()
        })
        .collect();
    let first = header.iter().position(|c| *c == "loss");
    let end = header.iter().position(|c| *c == "grad_norm");
    let (Some(first), Some(end)) = (first, end) else {
        return Err(Error::Other(format!(
            "{}: the header lacks the loss or grad_norm column",
            path.display()
        )));
    };
    let panels: Vec<Panel> = (first..end)
        .map(|i| Panel {
            title: format!("{} vs step", header[i]),
            series: vec![rows
                .iter()
                .map(|r| r.get(i).copied().unwrap_or(f32::NAN))
                .collect()],
        })
        .collect();
    render_panels(&run.join("losses.png"), &panels, 2, (520, 300))
}

pub fn pretrain(req: &PretrainRequest, progress: &dyn Fn(&StepReport)) -> Result<PretrainSummary> {
    let recipe = &req.recipe;
    recipe.validate()?;
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
    let existing = existing.filter(|_| req.resume);
    let (m, device) = (&recipe.model, &req.device);
    match &recipe.objectives {
        ObjectiveConfig::SymTime(o) => train(
            &SymTime::new(m, o, device)?,
            req,
            corpus,
            existing,
            progress,
        ),
        ObjectiveConfig::Views(o) => {
            train(&Views::new(m, o, device)?, req, corpus, existing, progress)
        }
        ObjectiveConfig::TimeMae(o) => train(
            &TimeMae::new(m, o, device)?,
            req,
            corpus,
            existing,
            progress,
        ),
        ObjectiveConfig::Fei(o) => train(&Fei::new(m, o, device)?, req, corpus, existing, progress),
        ObjectiveConfig::CrossTimeNet(o) => train(
            &CrossTimeNet::new(m, o, device)?,
            req,
            corpus,
            existing,
            progress,
        ),
    }
}

/// The run loop of `pretrain` for one objective, from the checkpoint `existing` (when
/// resuming) or from the start.
fn train<O: Objective>(
    model: &O,
    req: &PretrainRequest,
    corpus: Corpus,
    existing: Option<PathBuf>,
    progress: &dyn Fn(&StepReport),
) -> Result<PretrainSummary> {
    let (recipe, out, device) = (&req.recipe, req.out.as_path(), &req.device);
    let t = &recipe.train;
    let corpus_digest = sha256_file(&corpus.dir.join(MANIFEST))?;
    let mut opt = AdamW::new(model.trainable(), t.weight_decay)?;
    let first_step = match existing {
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
            saved.restore("online", model.online(), device)?;
            saved.restore("state", model.state(), device)?;
            opt.load_state(&saved.tensors("optimizer", device)?)
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
    let columns = model.columns();
    let header = metrics_header(columns);
    let mut metrics = open_metrics(&out.join("metrics.csv"), &header, first_step)?;
    let mut stream = PairStream::open(
        corpus,
        LoaderConfig {
            length: recipe.model.series.length,
            max_tokens: recipe.model.symbol.as_ref().map(|s| s.max_tokens),
            batch_size: t.batch_size,
            shuffle_buffer: t.shuffle_buffer,
            prefetch_batches: t.prefetch_batches,
            seed: t.seed,
            skip_batches: first_step as u64,
        },
    )?;
    let masks = MaskConfig {
        patch: recipe.model.series.patch,
        mask_ratio: recipe.objectives.patch_mask_ratio(),
        mlm_prob: recipe.objectives.mlm_prob(),
    };
    let save = |step: usize, opt: &AdamW| -> Result<()> {
        let groups = [
            ("online", params::tensors(model.online())),
            ("state", params::tensors(model.state())),
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
    let mut final_report = None;
    for step in first_step..last_step {
        let tick = Instant::now();
        let pairs = stream.next_batch()?;
        let mut rng = sample_rng(t.seed, (1 << 40) | step as u64);
        let batch = collate(&pairs, &masks, &mut rng, device)?;
        let at = Progress {
            step,
            steps: t.steps,
        };
        let (grads, report, pending) = model.gradients(&batch, at, &mut rng)?;
        if !report.total.is_finite() {
            let kept = checkpoint::latest(out)
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "none yet".into());
            let terms: Vec<String> = columns
                .iter()
                .zip(&report.values)
                .map(|(c, v)| format!("{c} {v}"))
                .collect();
            return Err(Error::Other(format!(
                "training stopped: the loss became {} at step {} ({}); the last checkpoint ({kept}) is intact. Lower train.lr or check the corpus.",
                report.total, step + 1, terms.join(", ")
            )));
        }
        let lr = learning_rate(step, t.lr, t.min_lr, t.warmup_steps, t.steps);
        let grad_norm = opt.step(&grads, lr, t.clip_norm)?;
        model.after_step(pending, at)?;
        let rate = pairs.len() as f64 / tick.elapsed().as_secs_f64();
        let values: Vec<String> = report.values.iter().map(|v| v.to_string()).collect();
        writeln!(
            metrics,
            "{},{lr:.6e},{},{},{grad_norm:.5},{rate:.1}",
            step + 1,
            report.total,
            values.join(","),
        )
        .map_err(|e| Error::io(out.join("metrics.csv"), e))?;
        progress(&StepReport {
            step: step + 1,
            steps: t.steps,
            columns,
            report: &report,
            pairs_per_second: rate,
        });
        final_report = Some(report);
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
        model.online(),
        "series",
    )?;
    plot_losses(out)?;
    Ok(PretrainSummary {
        first_step,
        last_step,
        columns,
        final_report,
        seconds: started.elapsed().as_secs_f64(),
    })
}
