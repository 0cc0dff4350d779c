//! `s2kit run RECIPE`: the whole pipeline under one run directory: generate a corpus,
//! pretrain a model on it, evaluate its encoder on real classification sets (linear probe,
//! fine-tune, and the same architecture from scratch) next to an FCN from scratch, and print
//! one table. Finished stages are kept, so rerunning an interrupted pipeline continues it;
//! a stage whose inputs changed is never reused (see `run_pipeline`).

use crate::checks::{read_toml, write_atomically};
use crate::digest::{sha256_bytes, sha256_file};
use crate::error::{Action, Error, Result};
use crate::generate::{generate_corpus, GenerateRequest};
use crate::lock::lock_dir;
use crate::model::{encoder_digest, EncoderConfig};
use crate::preset::GeneratorConfig;
use crate::pretrain::{pretrain, recorded_run, PretrainRecipe, PretrainRequest};
use crate::store::{Compression, Corpus, Manifest, MANIFEST};
use crate::transfer::{
    check_request, dataset_digest, run_transfer, FitConfig, Head, ModelSpec, Protocol,
    TransferReport, TransferRequest, CLASSIFIER_REVISION, DEFAULT_FOLDS, MAX_FOLDS,
    MAX_FOLD_EPOCHS,
};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenerateStage {
    pub preset: PathBuf,
    pub samples: u64,
    pub seed: u64,
    pub shard_size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainStage {
    pub recipe: PathBuf,
    /// Overrides the recipe's step count (to fit a time budget).
    pub steps: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransferStage {
    pub datasets: Vec<PathBuf>,
    pub seeds: u64,
    /// Maximum epochs for the pretrained encoder's protocols.
    pub epochs: usize,
    /// Maximum epochs for the FCN baseline.
    pub fcn_epochs: usize,
    /// Saved encoders (e.g. the shipped `models/...`) to probe beside the run's own: one
    /// linear-probe column each, named after its directory (which must not be one of the
    /// other columns' names).
    #[serde(default)]
    pub encoders: Vec<PathBuf>,
    /// Whether the linear probes of saved encoders also read each channel's level (as
    /// `transfer --levels`).
    #[serde(default)]
    pub levels: bool,
    /// How scratch and finetune choose their epochs: by k-fold cross-validation on TRAIN with
    /// this many folds, or with 0 on a hold-out split (as `transfer --folds`). The FCN
    /// baseline keeps its hold-out with early stopping (its recipe trains long, and k + 1 FCN
    /// fits would be most of the run's time).
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// The head of scratch and finetune (as `transfer --head`).
    #[serde(default)]
    pub head: Head,
}

fn default_folds() -> usize {
    DEFAULT_FOLDS
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineRecipe {
    /// The run directory; every intermediate output goes under it.
    pub out: PathBuf,
    pub generate: GenerateStage,
    pub pretrain: PretrainStage,
    pub transfer: TransferStage,
}

impl PipelineRecipe {
    pub fn from_file(path: &Path) -> Result<Self> {
        read_toml(path, PipelineRecipe::validate)
    }

    pub fn validate(&self) -> Result<()> {
        // Each column caches its cells under its name, so names must be distinct.
        let mut taken: Vec<String> = columns(Path::new(""), &[])
            .into_iter()
            .map(|(label, ..)| label.to_lowercase())
            .collect();
        for dir in &self.transfer.encoders {
            let name = dir.file_name().map(|n| n.to_string_lossy().to_lowercase());
            match name {
                Some(name) if !taken.contains(&name) => taken.push(name),
                _ => {
                    return Err(Error::Config(format!(
                        "transfer.encoders: {} needs a directory name of its own (not one of {})",
                        dir.display(),
                        taken.join(", ")
                    )))
                }
            }
        }
        // Cells are cached under the dataset's directory name too.
        let names: Vec<String> = self
            .transfer
            .datasets
            .iter()
            .map(|d| dataset_name(d))
            .collect();
        if let Some(twice) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(n))
        {
            return Err(Error::Config(format!(
                "transfer.datasets: two datasets are named {twice}; their results would share one cache file"
            )));
        }
        let t = &self.transfer;
        if t.folds == 1 || t.folds > MAX_FOLDS {
            return Err(Error::Config(format!(
                "transfer.folds = {} must lie in [2, {MAX_FOLDS}], or be 0 for a hold-out",
                t.folds
            )));
        }
        if t.folds > 0 && t.epochs > MAX_FOLD_EPOCHS {
            return Err(Error::Config(format!(
                "transfer.epochs = {} with transfer.folds = {}: k-fold selection runs every epoch on every fold, without early stopping; use at most {MAX_FOLD_EPOCHS} epochs, or folds = 0 to stop early on a hold-out",
                t.epochs, t.folds
            )));
        }
        if self.transfer.datasets.is_empty()
            || self.transfer.seeds == 0
            || self.generate.samples == 0
        {
            return Err(Error::Config(
                "transfer.datasets, transfer.seeds and generate.samples must not be empty or zero"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// One line of progress for the display.
pub enum Stage<'a> {
    Generating,
    Pretraining {
        step: usize,
        steps: usize,
        loss: f32,
    },
    Transferring {
        dataset: &'a str,
        column: &'a str,
    },
    /// A stale output is being removed to be redone (`--rerun-stale`).
    Replacing {
        path: &'a Path,
        why: &'a str,
    },
}

/// The table: one row per dataset, accuracy and macro-F1 (mean over seeds) per column.
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<(f64, f64)>)>,
    /// The recipe's `[transfer] folds` and `head`, which the table's footnote names.
    pub folds: usize,
    pub head: Head,
}

/// The columns: (label, model, protocol, uses the FCN epoch budget).
fn columns(encoder: &Path, extra: &[PathBuf]) -> Vec<(String, ModelSpec, Protocol, bool)> {
    let own: Vec<(&str, ModelSpec, Protocol, bool)> = vec![
        (
            "scratch",
            ModelSpec::Saved(encoder.to_path_buf()),
            Protocol::Scratch,
            false,
        ),
        (
            "linear",
            ModelSpec::Saved(encoder.to_path_buf()),
            Protocol::Linear,
            false,
        ),
        (
            "finetune",
            ModelSpec::Saved(encoder.to_path_buf()),
            Protocol::Finetune,
            false,
        ),
        ("FCN", ModelSpec::Fcn, Protocol::Scratch, true),
        ("MiniRocket", ModelSpec::MiniRocket, Protocol::Linear, false),
    ];
    let extra = extra.iter().map(|dir| {
        let name = dir
            .file_name()
            .map_or("encoder".into(), |n| n.to_string_lossy().to_string());
        (name, ModelSpec::Saved(dir.clone()), Protocol::Linear, false)
    });
    own.into_iter()
        .map(|(label, model, protocol, fcn)| (label.to_string(), model, protocol, fcn))
        .chain(extra)
        .collect()
}

/// The stages' requests, built (and every input checked) before the first stage starts, so a
/// missing dataset fails in a second rather than after hours of generation and pretraining.
struct Plan {
    generate: GenerateRequest,
    pretrain: PretrainRecipe,
    /// Per dataset: its name and one (column label, request) per column.
    cells: Vec<(String, Vec<(String, TransferRequest)>)>,
}

fn plan(recipe: &PipelineRecipe, device: &Device) -> Result<Plan> {
    let g = &recipe.generate;
    let generate = GenerateRequest {
        config: GeneratorConfig::from_file(&g.preset)?,
        seed: g.seed,
        samples: g.samples,
        shard_size: g.shard_size,
        out: recipe.out.join("corpus"),
        worker: 0,
        workers: 1,
        resume: true,
        compression: Compression::ShuffleLzf,
        threads: 0,
    };
    let mut pretrain = PretrainRecipe::from_file(&recipe.pretrain.recipe)?;
    if let Some(steps) = recipe.pretrain.steps {
        pretrain.train.steps = steps;
    }
    pretrain.validate()?;
    let window = pretrain.model.series.length;
    if window > generate.config.length {
        return Err(Error::Config(format!(
            "{}: the model window {window} is longer than the series of {} (length {})",
            recipe.pretrain.recipe.display(),
            g.preset.display(),
            generate.config.length
        )));
    }
    let t = &recipe.transfer;
    for dir in &t.encoders {
        // The run's own pretraining output does not exist yet; it is checked when made.
        if !dir.starts_with(&recipe.out) {
            EncoderConfig::load(dir)?;
        }
    }
    let run_dir = recipe.out.join("pretrain");
    let mut cells = Vec::new();
    for dataset in &t.datasets {
        let name = dataset_name(dataset);
        let mut row = Vec::new();
        for (label, model, protocol, fcn) in columns(&run_dir, &t.encoders) {
            let levels = t.levels && protocol == Protocol::Linear && model != ModelSpec::MiniRocket;
            let req = TransferRequest {
                dataset: dataset.clone(),
                model,
                protocol,
                seeds: t.seeds,
                fit: FitConfig {
                    max_epochs: if fcn { t.fcn_epochs } else { t.epochs },
                    ..FitConfig::default()
                },
                val_fraction: 0.2,
                folds: (protocol != Protocol::Linear && !fcn && t.folds > 0).then_some(t.folds),
                head: if protocol == Protocol::Linear || fcn {
                    Head::Linear
                } else {
                    t.head
                },
                save_encoder: None,
                overwrite: false,
                layer: None,
                choose_layer: false,
                levels,
                native: false,
                device: device.clone(),
            };
            check_request(&req)
                .map_err(|e| Error::Config(format!("[transfer], {name}, column {label}: {e}")))?;
            row.push((label, req));
        }
        cells.push((name, row));
    }
    Ok(Plan {
        generate,
        pretrain,
        cells,
    })
}

/// A dataset's name: its directory's.
fn dataset_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dataset")
        .to_string()
}

/// A stage whose recorded inputs differ from the recipe's: removed and redone when the user
/// asked for it (`rerun_stale`), refused otherwise; never reused.
fn stale(path: &Path, why: &str, rerun_stale: bool, progress: &dyn Fn(Stage)) -> Result<()> {
    if !rerun_stale {
        return Err(Error::Request(format!(
            "{} is stale: {why}; pass --rerun-stale to replace it (and the stages after it), or set a new `out` in the recipe",
            path.display()
        )));
    }
    progress(Stage::Replacing { path, why });
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io(path, e))
}

/// Runs every unfinished stage of `recipe`, pretraining and transfer on `device`. Each stage
/// is keyed by a digest of its inputs (its recipe section and its upstream stage's output):
/// a finished stage is reused only when they match.
pub fn run_pipeline(
    recipe: &PipelineRecipe,
    device: &Device,
    rerun_stale: bool,
    progress: &dyn Fn(Stage),
) -> Result<PipelineReport> {
    let plan = plan(recipe, device)?;
    let out = &recipe.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = lock_dir(out, None)?;

    let corpus_dir = &plan.generate.out;
    let manifest = corpus_dir.join(MANIFEST);
    if manifest.exists() && Manifest::load(&manifest)?.spec != plan.generate.spec()? {
        let why = "the recipe's [generate] section, its preset or the corpus format (generator revision, compression) changed since it was generated";
        stale(corpus_dir, why, rerun_stale, progress)?;
    }
    if Corpus::open(corpus_dir).is_err() {
        progress(Stage::Generating);
        generate_corpus(&plan.generate, &|_| {})?;
    }
    let corpus_digest = sha256_file(&manifest)?;

    let run_dir = out.join("pretrain");
    let record = match recorded_run(&run_dir) {
        Ok(Some(r)) if r.recipe != plan.pretrain || r.corpus != corpus_digest => {
            let why = "the pretraining recipe or the corpus changed since it was trained";
            stale(&run_dir, why, rerun_stale, progress)?;
            None
        }
        Ok(r) => r,
        Err(e) => {
            let why = format!("its checkpoint cannot be used ({e})");
            stale(&run_dir, &why, rerun_stale, progress)?;
            None
        }
    };
    let has_encoder = EncoderConfig::load(&run_dir).is_ok();
    if record.is_none() && has_encoder {
        let why = "its encoder has no checkpoint recording what it was trained from";
        stale(&run_dir, why, rerun_stale, progress)?;
    }
    // Without a record the run is redone from its start whatever `has_encoder` says.
    let finished = record
        .as_ref()
        .is_some_and(|r| r.step == plan.pretrain.train.steps);
    if !finished || !has_encoder {
        let req = PretrainRequest {
            recipe: plan.pretrain.clone(),
            device: device.clone(),
            data: corpus_dir.clone(),
            out: run_dir.clone(),
            resume: record.is_some(),
            stop_at: None,
        };
        pretrain(&req, &|r| {
            progress(Stage::Pretraining {
                step: r.step,
                steps: r.steps,
                loss: r.report.total,
            })
        })?;
    }

    let transfer_dir = out.join("transfer");
    std::fs::create_dir_all(&transfer_dir).map_err(|e| Error::io(&transfer_dir, e))?;
    let mut rows = Vec::new();
    for (name, row) in &plan.cells {
        let data_digest = dataset_digest(&row[0].1.dataset)?;
        let mut cells = Vec::new();
        for (label, req) in row {
            let inputs = cell_digest(req, &data_digest)?;
            let path = transfer_dir.join(format!("{name}-{label}.json"));
            // A cell that does not parse was cut short by a kill: unfinished, not stale.
            let cached = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
            let (acc, f1) = match cached {
                Some(v) if v[INPUTS_KEY].as_str() == Some(inputs.as_str()) => (
                    v["accuracy_mean"].as_f64().unwrap_or(f64::NAN),
                    v["macro_f1_mean"].as_f64().unwrap_or(f64::NAN),
                ),
                cached => {
                    if cached.is_some() {
                        let why = "its model, dataset or the recipe's [transfer] settings changed since it was computed";
                        stale(&path, why, rerun_stale, progress)?;
                    }
                    progress(Stage::Transferring {
                        dataset: name,
                        column: label,
                    });
                    let report: TransferReport = run_transfer(req, &|_| {})?;
                    let mut value = serde_json::to_value(&report)
                        .map_err(Error::json(Action::Saving, &path))?;
                    value[INPUTS_KEY] = inputs.into();
                    let text = serde_json::to_string_pretty(&value)
                        .map_err(Error::json(Action::Saving, &path))?;
                    write_atomically(&path, &text)?;
                    (report.accuracy_mean, report.macro_f1_mean)
                }
            };
            cells.push((acc, f1));
        }
        rows.push((name.clone(), cells));
    }
    let report = PipelineReport {
        columns: plan.cells[0]
            .1
            .iter()
            .map(|(label, _)| label.clone())
            .collect(),
        rows,
        folds: recipe.transfer.folds,
        head: recipe.transfer.head,
    };
    let summary = out.join("summary.json");
    let text =
        serde_json::to_string_pretty(&report).map_err(Error::json(Action::Saving, &summary))?;
    std::fs::write(&summary, text).map_err(|e| Error::io(&summary, e))?;
    std::fs::write(out.join("summary.md"), format_table(&report))
        .map_err(|e| Error::io(out.join("summary.md"), e))?;
    Ok(report)
}

/// The key under which a cached cell records the digest of its inputs.
const INPUTS_KEY: &str = "inputs_sha256";

/// The digest of everything a transfer cell depends on: the request's settings, the
/// dataset's files and, for a saved encoder, its files.
fn cell_digest(req: &TransferRequest, data_digest: &str) -> Result<String> {
    let encoder = match &req.model {
        ModelSpec::Saved(dir) => Some(encoder_digest(dir)?),
        _ => None,
    };
    let mut inputs = serde_json::json!({
        "dataset": data_digest,
        "model": format!("{:?}", req.model),
        "encoder": encoder,
        "protocol": req.protocol,
        "seeds": req.seeds,
        "fit": req.fit,
        "val_fraction": req.val_fraction,
        "layer": req.layer,
        "levels": req.levels,
        "native": req.native,
        "choose_layer": req.choose_layer,
        "classifiers": CLASSIFIER_REVISION,
    });
    // Recorded only when set, so that cells computed before these settings existed (and
    // identical to them) stay valid.
    if let Some(k) = req.folds {
        inputs["folds"] = k.into();
    }
    if req.head != Head::Linear {
        inputs["head"] = serde_json::json!(req.head);
    }
    Ok(sha256_bytes(inputs.to_string().as_bytes()))
}

/// A Markdown table of accuracy / macro-F1 per dataset and column.
pub fn format_table(report: &PipelineReport) -> String {
    let mut s = String::from("| dataset |");
    for c in &report.columns {
        s.push_str(&format!(" {c} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(report.columns.len()));
    s.push('\n');
    for (name, cells) in &report.rows {
        s.push_str(&format!("| {name} |"));
        for (acc, f1) in cells {
            s.push_str(&format!(" {acc:.3} / {f1:.3} |"));
        }
        s.push('\n');
    }
    let selection = match report.folds {
        0 => "on a hold-out of TRAIN".to_string(),
        k => {
            format!("by {k}-fold cross-validation on TRAIN (one fold per case where TRAIN has fewer than {k} cases)")
        }
    };
    let head = match report.head {
        Head::Linear => "linear head",
        Head::BatchNorm => "batch-norm and linear head",
    };
    s.push_str(&format!(
        "\nEach cell: TEST accuracy / macro-F1, mean over seeds. scratch, linear and finetune use the\n\
         pretrained architecture (scratch: random init); FCN is trained from scratch; MiniRocket is\n\
         fixed features; any further column is a saved encoder from the recipe, frozen. Frozen\n\
         features (linear, MiniRocket, saved encoders) are standardised on TRAIN and classified by\n\
         ridge with leave-one-out alpha on TRAIN.\n\
         scratch and finetune ({head}): the number of epochs chosen {selection}.\n\
         FCN: its epoch chosen on a hold-out of TRAIN. TEST is scored once.\n"
    ));
    s
}
