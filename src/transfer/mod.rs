//! Transfer evaluation on real classification sets: the scratch, linear-probe and fine-tune
//! protocols, and TEST scored once. Scratch and fine-tune select their epoch on a validation
//! split of TRAIN; the linear probe standardises frozen features on TRAIN and fits a ridge
//! classifier whose regularisation is chosen by leave-one-out cross-validation on TRAIN.
//! MiniRocket's fixed features go through the same probe.
//!
//! Multichannel data: every encoder is univariate, so each of a case's C channels is embedded
//! separately and the C feature vectors are concatenated before the head or probe, which also
//! lets an encoder move between sets with different channel counts. MiniRocket is the
//! exception: as in its reference, each of its kernels sums a random subset of channels.

mod embed;
mod fit;
mod metrics;
mod minirocket;
mod report;
mod ridge;
mod ucr;

pub use embed::{embed, EmbedRequest, Embedding};
pub use fit::{fit, FitConfig, FitReport};
pub use metrics::{mean_std, score, ClassCounts, Scores};
pub use minirocket::MiniRocket;
pub use report::{SeedResult, Selection, TransferReport};
pub use ridge::{default_alphas, RidgeClassifier};
pub use ucr::{dataset_digest, TsDataset};

use crate::error::{Error, Result};
use crate::lock::{is_lock_file, lock_dir};
use crate::model::{
    linear, load_encoder_weights, params, save_encoder, BatchNorm1d, Encoder, EncoderConfig,
    FcnConfig, Linear,
};
use crate::rng::{sample_rng, SampleRng};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use fit::{
    best_mean_epoch, evaluate, fit_epochs, to_tensors, validation_curve, Batchable, ParamGroup,
};
use rand::SeedableRng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ucr::{prepare, stratified_folds, stratified_split, Prepared};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The architecture trained from random initialisation.
    Scratch,
    /// Frozen features (a pretrained encoder's readout, or MiniRocket's), standardised on
    /// TRAIN, and a ridge classifier with leave-one-out selection of its regularisation.
    Linear,
    /// Every weight trained, starting from the pretrained encoder.
    Finetune,
}

impl std::str::FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scratch" => Ok(Protocol::Scratch),
            "linear" => Ok(Protocol::Linear),
            "finetune" => Ok(Protocol::Finetune),
            _ => Err(Error::Request(format!(
                "unknown protocol '{s}' (scratch, linear, finetune)"
            ))),
        }
    }
}

/// The classifier head of `scratch` and `finetune` over the concatenated features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// A linear layer.
    #[default]
    Linear,
    /// Batch normalisation of every feature, then a linear layer (Mantis's fine-tuning head):
    /// the head sees standardised features however the encoder's scale drifts.
    BatchNorm,
}

impl std::str::FromStr for Head {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Head::Linear),
            "batchnorm" => Ok(Head::BatchNorm),
            _ => Err(Error::Request(format!(
                "unknown head '{s}' (linear, batchnorm)"
            ))),
        }
    }
}

/// The model to evaluate: a fresh FCN, MiniRocket's fixed features, or a saved encoder.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    Fcn,
    MiniRocket,
    Saved(PathBuf),
}

impl ModelSpec {
    pub fn parse(s: &str) -> ModelSpec {
        match s {
            "fcn" => ModelSpec::Fcn,
            "minirocket" => ModelSpec::MiniRocket,
            _ => ModelSpec::Saved(PathBuf::from(s)),
        }
    }

    fn label(&self) -> String {
        match self {
            ModelSpec::Fcn => "fcn".into(),
            ModelSpec::MiniRocket => "minirocket".into(),
            ModelSpec::Saved(p) => p.display().to_string(),
        }
    }

    /// Whether its input channels are z-normalised case by case (all but MiniRocket).
    fn z_normalises(&self) -> bool {
        *self != ModelSpec::MiniRocket
    }

    /// The encoder's config: the default FCN, a saved one, or none (MiniRocket).
    fn encoder_config(&self) -> Result<Option<EncoderConfig>> {
        Ok(match self {
            ModelSpec::Fcn => Some(EncoderConfig::Fcn(FcnConfig::default())),
            ModelSpec::MiniRocket => None,
            ModelSpec::Saved(dir) => Some(EncoderConfig::load(dir)?),
        })
    }
}

#[derive(Clone, Debug)]
pub struct TransferRequest {
    pub dataset: PathBuf,
    pub model: ModelSpec,
    pub protocol: Protocol,
    pub seeds: u64,
    pub fit: FitConfig,
    /// Share of each TRAIN class held out for model selection.
    pub val_fraction: f64,
    /// Under `scratch` and `finetune`: choose the number of epochs by stratified k-fold
    /// cross-validation on TRAIN and train the classifier on all of TRAIN for that many,
    /// instead of selecting an epoch on the `val_fraction` hold-out.
    pub folds: Option<usize>,
    /// The head of `scratch` and `finetune`.
    pub head: Head,
    /// Where to save the first seed's selected encoder (for later transfer), if anywhere.
    pub save_encoder: Option<PathBuf>,
    /// Let `save_encoder` replace the files of a non-empty directory.
    pub overwrite: bool,
    /// The encoder layer the linear probe reads (1-based; `None`: the last).
    pub layer: Option<usize>,
    /// Whether the linear probe chooses its layer among all of them, with α, by leave-one-out
    /// error on TRAIN (`--layer auto`; `layer` is then unset).
    pub choose_layer: bool,
    /// Whether the linear probe also reads each channel's level, which z-normalisation hides
    /// from the encoder (the block's weight is chosen on TRAIN, and may be 0).
    pub levels: bool,
    /// Whether the linear probe reads each series at its own length (the longest TRAIN
    /// case) instead of resampled to the encoder's window (see `Encoder::readout_native`).
    pub native: bool,
    /// Where the classifiers train.
    pub device: Device,
}

/// Progress notifications for a display.
pub enum TransferProgress {
    Seed {
        seed: u64,
        of: u64,
    },
    /// A fold's run under k-fold selection; `fold == of` is the final fit on all of TRAIN.
    Fold {
        fold: usize,
        of: usize,
    },
    Epoch {
        epoch: usize,
        val_loss: f64,
    },
}

/// An encoder with a head (see `Head`) over its concatenated per-channel features.
struct Classifier {
    encoder: Box<dyn Encoder>,
    /// Under `Head::BatchNorm` (variables `head.norm.*`).
    norm: Option<BatchNorm1d>,
    head: Linear,
}

impl Classifier {
    fn features(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        let f = self.encoder.forward_t(&x.reshape((b * c, l))?, train)?;
        f.reshape((b, c * self.encoder.feature_dim()))
    }

    /// What the linear layer reads: the features, batch-normalised under `Head::BatchNorm`.
    fn normalised(&self, features: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match &self.norm {
            Some(norm) => norm.forward_t(&features.unsqueeze(2)?, train)?.squeeze(2),
            None => Ok(features.clone()),
        }
    }

    fn logits(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.head
            .forward(&self.normalised(&self.features(x, train)?, train)?)
    }
}

fn build_classifier(
    cfg: &EncoderConfig,
    head: Head,
    [channels, classes]: [usize; 2],
    varmap: &VarMap,
    device: &Device,
) -> Result<Classifier> {
    let encoder = cfg.build(varmap, device)?;
    let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
    let width = channels * encoder.feature_dim();
    let norm = match head {
        Head::Linear => None,
        Head::BatchNorm => Some(BatchNorm1d::new(width, vb.pp("head.norm"), varmap)?),
    };
    let head = linear(width, classes, vb.pp("head"))?;
    Ok(Classifier {
        encoder,
        norm,
        head,
    })
}

/// One seed's classifier: built, initialised from `rng`, then (unless trained from scratch)
/// given the saved encoder's weights.
fn initialised_classifier(
    req: &TransferRequest,
    encoder_cfg: &EncoderConfig,
    shape: [usize; 2],
    rng: &mut SampleRng,
) -> Result<(Classifier, VarMap)> {
    let (model, device) = (&req.model, &req.device);
    let varmap = VarMap::new();
    let classifier = build_classifier(encoder_cfg, req.head, shape, &varmap, device)?;
    params::seeded_init(&varmap, rng)?;
    if let ModelSpec::Saved(dir) = model {
        if req.protocol != Protocol::Scratch {
            load_encoder_weights(dir, &varmap, device)?;
        }
    }
    Ok((classifier, varmap))
}

/// True when `dir` holds anything but lock files.
fn occupied(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| !is_lock_file(&e.file_name().to_string_lossy())))
    })
}

/// The revision of what the classifiers compute for a given request: a cached result of an
/// earlier revision is redone (`s2kit run`). 2: the patch transformer's fine-tuned and
/// from-scratch head reads [CLS] and the patch mean, not [CLS] alone. 3: k-fold's shared
/// initial weights come from a stream of their own, and a lone last case of an epoch joins
/// the batch before it.
pub const CLASSIFIER_REVISION: u32 = 3;

/// The most seeds one evaluation runs (each is a full fit).
const MAX_SEEDS: u64 = 1000;

/// The most folds k-fold selection runs (each is a full fit).
pub const MAX_FOLDS: usize = 20;

/// The longest schedule k-fold selection runs: it has no early stopping.
pub const MAX_FOLD_EPOCHS: usize = 10_000;

/// The folds of scratch and finetune unless asked otherwise: on the bundled sets, 5-fold
/// selection beat the 20% hold-out for scratch and both shipped encoders (README,
/// "Fine-tuning against scratch").
pub const DEFAULT_FOLDS: usize = 5;

impl TransferRequest {
    /// Refuses a non-empty `--save-encoder` directory unless `overwrite`.
    fn check_encoder_target(&self, dir: &Path) -> Result<()> {
        if occupied(dir) && !self.overwrite {
            return Err(Error::Request(format!(
                "--save-encoder {}: the directory is not empty; pass --force to replace what is there",
                dir.display()
            )));
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_SEEDS).contains(&self.seeds) {
            return Err(Error::Request(format!(
                "--seeds must lie in [1, {MAX_SEEDS}]"
            )));
        }
        if self.fit.max_epochs == 0 || self.fit.batch_size == 0 {
            return Err(Error::Request(
                "--epochs and --batch-size must be at least 1".into(),
            ));
        }
        if self.head == Head::BatchNorm && self.fit.batch_size == 1 {
            // The head normalises over the batch alone: one case has no spread, and its
            // normalised features would be constant.
            return Err(Error::Request(
                "--head batchnorm needs --batch-size of at least 2".into(),
            ));
        }
        if !(self.fit.lr.is_finite() && self.fit.lr > 0.0) {
            return Err(Error::Request(format!(
                "--lr {} must be finite and > 0",
                self.fit.lr
            )));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(Error::Request(
                "--val-fraction must lie strictly between 0 and 1".into(),
            ));
        }
        if self.model == ModelSpec::Fcn && self.protocol != Protocol::Scratch {
            return Err(Error::Request(format!(
                "--protocol {:?} needs a pretrained encoder directory as --model (or, for linear, `minirocket`); `fcn` is trained from scratch only",
                self.protocol
            ).to_lowercase()));
        }
        if self.model == ModelSpec::MiniRocket && self.protocol != Protocol::Linear {
            return Err(Error::Request(
                "`minirocket` is a fixed feature map: use it with --protocol linear".into(),
            ));
        }
        if let Some(dir) = &self.save_encoder {
            if self.protocol == Protocol::Linear {
                return Err(Error::Request(
                    "--save-encoder keeps trained weights; the linear protocol trains none".into(),
                ));
            }
            self.check_encoder_target(dir)?;
        }
        if self.levels && (self.protocol != Protocol::Linear || self.model == ModelSpec::MiniRocket)
        {
            return Err(Error::Request(
                "--levels adds channel levels to an encoder's linear probe: use it with --protocol linear and a saved encoder (MiniRocket already sees the levels)".into(),
            ));
        }
        if self.native && self.protocol != Protocol::Linear {
            return Err(Error::Request(
                "--native chooses the linear probe's readout; use it with --protocol linear".into(),
            ));
        }
        if self.model == ModelSpec::MiniRocket && (self.native || self.choose_layer) {
            return Err(Error::Request(
                "--native and --layer auto choose an encoder's readout; MiniRocket has no layers and always reads series at the dataset's own length".into(),
            ));
        }
        if self.choose_layer && self.layer.is_some() {
            return Err(Error::Request(
                "--layer is either a layer or `auto`, not both".into(),
            ));
        }
        if let Some(k) = self.folds {
            if !(2..=MAX_FOLDS).contains(&k) {
                return Err(Error::Request(format!(
                    "--folds {k} must lie in [2, {MAX_FOLDS}] (or 0 for a hold-out)"
                )));
            }
            if self.protocol != Protocol::Linear && self.fit.max_epochs > MAX_FOLD_EPOCHS {
                return Err(Error::Request(format!(
                    "--epochs {} with --folds {k}: k-fold selection runs every epoch on every fold, without early stopping; use at most {MAX_FOLD_EPOCHS} epochs, or --folds 0 to stop early on a hold-out",
                    self.fit.max_epochs
                )));
            }
        }
        if self.protocol == Protocol::Linear && (self.folds.is_some() || self.head != Head::Linear)
        {
            return Err(Error::Request(
                "--folds and --head choose how scratch and finetune train; the linear protocol selects its ridge by leave-one-out".into(),
            ));
        }
        if (self.layer.is_some() || self.choose_layer) && self.protocol != Protocol::Linear {
            return Err(Error::Request(
                "--layer chooses the linear probe's readout; use it with --protocol linear".into(),
            ));
        }
        Ok(())
    }
}

/// The random stream of a transfer seed ("transfer"); `embed` draws MiniRocket from the same
/// one, so its features are those the probe of that seed uses.
const TRANSFER_STREAM: u64 = 0x7472_616e_7366_6572;

/// A dataset as `model` sees it: its encoder's config, the common length, TRAIN and TEST.
/// With `native`, the length is the longest TRAIN case even when the encoder has a window.
struct PreparedSet {
    dataset: TsDataset,
    encoder_cfg: Option<EncoderConfig>,
    length: usize,
    train: Prepared,
    test: Prepared,
}

impl PreparedSet {
    fn load(dir: &Path, model: &ModelSpec, native: bool) -> Result<PreparedSet> {
        let dataset = TsDataset::load(dir)?;
        let encoder_cfg = model.encoder_config()?;
        // The preprocessing length comes from TRAIN (or the encoder), never from TEST.
        let length = encoder_cfg
            .as_ref()
            .and_then(EncoderConfig::input_length)
            .filter(|_| !native)
            .unwrap_or(dataset.train.max_length());
        let normalise = model.z_normalises();
        Ok(PreparedSet {
            train: prepare(&dataset.train, length, normalise),
            test: prepare(&dataset.test, length, normalise),
            dataset,
            encoder_cfg,
            length,
        })
    }
}

/// Refuses data no classifier can be fitted to, and says what the report should note: classes
/// left out of validation, channels with nothing to read.
fn data_notes(dataset: &TsDataset, req: &TransferRequest) -> Result<Vec<String>> {
    let counts = dataset.train.class_counts();
    let present: Vec<&String> = counts
        .iter()
        .zip(&dataset.train.class_names)
        .filter(|(&n, _)| n > 0)
        .map(|(_, name)| name)
        .collect();
    if present.len() < 2 {
        return Err(Error::Request(format!(
            "{}: TRAIN holds cases of {} class(es) ({}); a classifier needs at least two",
            dataset.name,
            present.len(),
            present
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut notes = Vec::new();
    let singletons: Vec<&str> = counts
        .iter()
        .zip(&dataset.train.class_names)
        .filter(|(&n, _)| n == 1)
        .map(|(_, name)| name.as_str())
        .collect();
    if req.protocol != Protocol::Linear && !singletons.is_empty() {
        if counts.iter().all(|&n| n < 2) {
            return Err(Error::Request(format!(
                "{}: no TRAIN class has two cases, so there is no validation split to select an epoch on; use --protocol linear (it selects by leave-one-out)",
                dataset.name
            )));
        }
        let whereabouts = match req.folds {
            None => "they are trained on but absent from the validation split",
            Some(_) => {
                "each is in one fold's validation cases and absent from that fold's training"
            }
        };
        notes.push(format!(
            "class(es) {} have one TRAIN case each: {whereabouts}",
            singletons.join(", ")
        ));
    }
    for (split, data) in [("TRAIN", &dataset.train), ("TEST", &dataset.test)] {
        let n = data.degenerate_channels();
        if n > 0 {
            notes.push(format!(
                "{n} {split} channel(s) have fewer than two observed values (all missing or a single point); they were filled with a constant"
            ));
        }
    }
    Ok(notes)
}

/// Checks `req` and its dataset without loading a model or training anything, so that a
/// pipeline can refuse a transfer stage before hours of earlier stages.
pub fn check_request(req: &TransferRequest) -> Result<()> {
    req.validate()?;
    data_notes(&TsDataset::load(&req.dataset)?, req).map(|_| ())
}

/// Runs every seed of `req` and returns the report.
pub fn run_transfer(
    req: &TransferRequest,
    progress: &dyn Fn(TransferProgress),
) -> Result<TransferReport> {
    req.validate()?;
    // Claimed before any work, so two runs cannot write one encoder directory.
    let _lock = match &req.save_encoder {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let lock = lock_dir(dir, None)?;
            req.check_encoder_target(dir)?; // again: another writer may have been first
            Some(lock)
        }
        None => None,
    };
    let device = &req.device;
    let PreparedSet {
        dataset,
        encoder_cfg,
        length,
        train: train_all,
        test,
    } = PreparedSet::load(&req.dataset, &req.model, req.native)?;
    let notes = data_notes(&dataset, req)?;
    let classes = dataset.train.class_names.len();
    let channels = dataset.train.n_channels();

    let mut seeds = Vec::new();
    for seed in 0..req.seeds {
        progress(TransferProgress::Seed {
            seed,
            of: req.seeds,
        });
        let started = Instant::now();
        let mut rng = sample_rng(seed, TRANSFER_STREAM);
        let (selection, predictions) = if req.protocol == Protocol::Linear {
            let mut readouts = Vec::new();
            for layer in probe_layers(req, encoder_cfg.as_ref())? {
                let readout = Readout {
                    layer,
                    native: req.native,
                };
                let (train_f, test_f) = frozen_features(
                    &req.model,
                    encoder_cfg.as_ref(),
                    readout,
                    [&train_all, &test],
                    &mut rng,
                    device,
                )?;
                readouts.push((layer, train_f, test_f));
            }
            linear_probe(readouts, [&train_all, &test], classes, req.levels)?
        } else {
            let Some(cfg) = &encoder_cfg else {
                return Err(Error::Request(format!(
                    "{} has no weights to train: use it with --protocol linear",
                    req.model.label()
                )));
            };
            let shape = [channels, classes];
            let (fit_report, predictions, varmap) = match req.folds {
                None => {
                    holdout_and_score(req, cfg, shape, [&train_all, &test], &mut rng, progress)?
                }
                Some(k) => {
                    kfold_and_score(req, cfg, shape, k, [&train_all, &test], &mut rng, progress)?
                }
            };
            if seed == 0 {
                if let Some(dir) = &req.save_encoder {
                    save_encoder(dir, cfg, &varmap)?;
                }
            }
            (Selection::Epochs(fit_report), predictions)
        };
        let scores = score(&test.labels, &predictions, &dataset.test.class_names);
        seeds.push(SeedResult {
            seed,
            selection,
            scores,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(TransferReport::new(
        &dataset,
        &req.model.label(),
        req,
        length,
        seeds,
        notes,
    ))
}

/// The fit's report, the TEST predictions and the trained weights.
type Outcome = (FitReport, Vec<usize>, VarMap);

fn split_tensors(p: &Prepared, device: &Device) -> Result<(Tensor, Tensor)> {
    Ok(to_tensors(
        &p.values,
        &p.labels,
        (p.n, p.channels, p.length),
        device,
    )?)
}

/// One feature vector per case.
type Features = Vec<Vec<f32>>;

/// Cases as [n][channel][time].
fn cases(p: &Prepared) -> Vec<Vec<Vec<f32>>> {
    p.values
        .chunks(p.channels * p.length)
        .map(|case| case.chunks(p.length).map(<[f32]>::to_vec).collect())
        .collect()
}

/// Weights tried for the block of channel levels under `--levels`, chosen with α by
/// leave-one-out error on TRAIN; 0 leaves the levels out.
const LEVEL_WEIGHTS: [f64; 5] = [0.0, 1.0, 3.0, 10.0, 30.0];

/// Each case's features followed by its channels' levels (mean and log standard deviation).
fn with_levels(features: Features, cases: &Prepared) -> Features {
    features
        .into_iter()
        .zip(cases.case_levels())
        .map(|(mut f, levels)| {
            f.extend_from_slice(levels);
            f
        })
        .collect()
}

/// The layers the linear probe reads: every layer under `choose_layer`, else the one asked
/// for (`None`: the last).
fn probe_layers(req: &TransferRequest, cfg: Option<&EncoderConfig>) -> Result<Vec<Option<usize>>> {
    if !req.choose_layer {
        return Ok(vec![req.layer]);
    }
    match cfg.and_then(EncoderConfig::layers) {
        Some(n) => Ok((1..=n).map(Some).collect()),
        None => Err(Error::Request(format!(
            "--layer auto: `{}` has no layers to choose from",
            req.model.label()
        ))),
    }
}

/// The ridge probe on frozen features: each readout's TRAIN and TEST features (tagged with the
/// layer they were read at, `None` for the default last), with (under `levels`) the channel levels appended. The readout,
/// the levels' weight and α are chosen together by leave-one-out error on TRAIN. Returns the
/// selection and the predictions for `test`.
fn linear_probe(
    readouts: Vec<(Option<usize>, Features, Features)>,
    [train, test]: [&Prepared; 2],
    classes: usize,
    levels: bool,
) -> Result<(Selection, Vec<usize>)> {
    // (probe, its readout's TEST features, their width, the layer, the levels' weight)
    let mut best: Option<(RidgeClassifier, Features, usize, Option<usize>, f64)> = None;
    for (layer, train_f, test_f) in readouts {
        let features = train_f.first().map_or(0, Vec::len);
        // Without levels: one candidate with no extra columns.
        let (train_f, test_f, extra, candidates) = if levels {
            let both = (with_levels(train_f, train), with_levels(test_f, test));
            (both.0, both.1, 2 * train.channels, &LEVEL_WEIGHTS[..])
        } else {
            (train_f, test_f, 0, &[1.0][..])
        };
        let mut chosen: Option<(RidgeClassifier, f64)> = None;
        for &w in candidates {
            let mut weights = vec![1.0; features];
            weights.resize(features + extra, w);
            let probe = RidgeClassifier::fit_weighted(
                &train_f,
                &weights,
                &train.labels,
                classes,
                &default_alphas(),
            )?;
            // Strictly better only: on ties the smaller weight (first, 0) stays.
            if chosen
                .as_ref()
                .is_none_or(|(b, _)| probe.loo_error() < b.loo_error())
            {
                chosen = Some((probe, w));
            }
        }
        let (probe, w) = chosen.expect("there is at least one candidate");
        // Likewise, on ties the earlier layer stays.
        if best
            .as_ref()
            .is_none_or(|(b, ..)| probe.loo_error() < b.loo_error())
        {
            best = Some((probe, test_f, features, layer, w));
        }
    }
    let (probe, test_f, features, layer, w) = best.expect("there is at least one readout");
    let selection = Selection::Ridge {
        alpha: probe.alpha,
        loo_mse: probe.loo_error(),
        features,
        layer,
        levels_weight: levels.then_some(w),
    };
    Ok((selection, probe.predict(&test_f)))
}

/// `f` applied to `x` [n, ...] 256 cases at a time (bounding the memory of one forward
/// pass), its [batch, features] outputs joined as rows.
fn by_batches(x: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Result<Features> {
    let n = x.dim(0)?;
    let mut rows = Vec::with_capacity(n);
    for start in (0..n).step_by(256) {
        rows.extend(f(&x.narrow(0, start, (n - start).min(256))?)?.to_vec2::<f32>()?);
    }
    Ok(rows)
}

/// Where a saved encoder's frozen features are read.
#[derive(Clone, Copy, Debug, Default)]
struct Readout {
    /// The layer (1-based; `None`: the last).
    layer: Option<usize>,
    /// At the series' own length (`Encoder::readout_native`), not resampled to the window.
    native: bool,
}

/// Frozen features of `train` and `test`, [n][features]: MiniRocket fitted on `train`, or a
/// saved encoder's `readout`, one channel at a time, the channels' features joined.
fn frozen_features(
    model: &ModelSpec,
    cfg: Option<&EncoderConfig>,
    Readout { layer, native }: Readout,
    [train, test]: [&Prepared; 2],
    rng: &mut crate::rng::SampleRng,
    device: &Device,
) -> Result<(Features, Features)> {
    match (model, cfg) {
        (ModelSpec::MiniRocket, _) if layer.is_some() => Err(Error::Request(
            "--layer chooses an encoder's readout; MiniRocket has no layers".into(),
        )),
        (ModelSpec::MiniRocket, _) if native => Err(Error::Request(
            "--native chooses an encoder's readout; MiniRocket always reads series at their own length".into(),
        )),
        (ModelSpec::MiniRocket, _) => {
            let train = cases(train);
            let rocket = MiniRocket::fit(&train, rng)?;
            Ok((rocket.transform(&train)?, rocket.transform(&cases(test))?))
        }
        (ModelSpec::Saved(dir), Some(cfg)) => {
            if let Some(layer) = layer {
                match cfg.layers() {
                    Some(n) if (1..=n).contains(&layer) => {}
                    Some(n) => {
                        return Err(Error::Request(format!(
                            "--layer {layer}: the encoder has layers 1 to {n}"
                        )))
                    }
                    None => {
                        return Err(Error::Request(format!(
                            "--layer {layer}: this encoder has no layers to choose from"
                        )))
                    }
                }
            }
            let varmap = VarMap::new();
            let encoder = cfg.build(&varmap, device)?;
            load_encoder_weights(dir, &varmap, device)?;
            let features = |p: &Prepared| -> Result<Features> {
                let (x, _) = split_tensors(p, device)?;
                by_batches(&x, |batch| {
                    let n = batch.dim(0)?;
                    let x = batch.reshape((n * p.channels, p.length))?;
                    let f = if native {
                        encoder.readout_native(&x, layer)?
                    } else {
                        encoder.readout(&x, layer)?
                    };
                    let width = f.dim(1)?;
                    f.reshape((n, p.channels * width))
                })
            };
            Ok((features(train)?, features(test)?))
        }
        _ => Err(Error::Request(format!(
            "`{}` has no trained weights to read features from: pass a saved encoder directory or `minirocket` as --model",
            model.label()
        ))),
    }
}

/// Under `finetune`, the pretrained encoder learns at this fraction of the head's rate, so
/// that the first steps of a new head do not undo its pretraining.
const FINETUNE_ENCODER_LR_SCALE: f64 = 0.1;

/// Logits per unit of the ridge's ±1 scores in the warm start: a case scored as cleanly as
/// its targets gets a logit margin of 3 over every other class (95% confidence with two
/// classes, 83% with five), confident but not saturated.
const WARM_START_GAIN: f64 = 1.5;

/// Sets the head's batch norm to standardise `features` as they are: running mean and
/// variance from them (population variance), scale 1 and shift 0 as initialised.
fn start_norm_at(varmap: &VarMap, features: &Features, device: &Device) -> Result<()> {
    let (n, d) = (
        features.len().max(1) as f64,
        features.first().map_or(0, Vec::len),
    );
    let mut mean = vec![0f64; d];
    for row in features {
        row.iter()
            .zip(&mut mean)
            .for_each(|(v, m)| *m += *v as f64 / n);
    }
    let mut var = vec![0f64; d];
    for row in features {
        for ((v, m), s) in row.iter().zip(&mean).zip(&mut var) {
            *s += (*v as f64 - m).powi(2) / n;
        }
    }
    for (name, values) in [("running_mean", mean), ("running_var", var)] {
        let key = format!("head.norm.{name}");
        let Some(buffer) = params::var(varmap, &key) else {
            return Err(Error::Other(format!("the classifier head has no {key}")));
        };
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        buffer.set(&Tensor::from_vec(values, d, device)?)?;
    }
    Ok(())
}

/// Linear probing before fine-tuning (LP-FT, Kumar et al. 2022): the head starts as the ridge
/// probe fitted on the frozen encoder's features of the training cases, instead of at random,
/// so fine-tuning starts from a classifier rather than from noise that would pull the encoder
/// off its features.
fn warm_start_head(
    model: &Classifier,
    varmap: &VarMap,
    x: &Tensor,
    labels: &[usize],
) -> Result<()> {
    let head = params::trainable(varmap, "head.");
    let classes = match head.iter().find(|(name, _)| name == "head.bias") {
        Some((_, bias)) => bias.dim(0)?,
        None => return Err(Error::Other("the classifier head has no bias".into())),
    };
    let mut features = by_batches(x, |batch| model.features(batch, false))?;
    if model.norm.is_some() {
        // The norm starts as TRAIN's standardisation, and the probe is fitted on its output,
        // which is what the linear layer reads.
        start_norm_at(varmap, &features, x.device())?;
        features = by_batches(x, |batch| {
            model.normalised(&model.features(batch, false)?, false)
        })?;
    }
    let probe = RidgeClassifier::fit(&features, labels, classes, &default_alphas())?;
    let (w, b) = probe.affine();
    // Two classes have one ±1 score s (positive: class 1): logits (−s, s)·gain.
    let rows: Vec<(Vec<f64>, f64)> = if classes == 2 {
        vec![
            (w[0].iter().map(|v| -v).collect(), -b[0]),
            (w[0].clone(), b[0]),
        ]
    } else {
        w.into_iter().zip(b).collect()
    };
    let d = rows[0].0.len();
    let weight: Vec<f32> = rows
        .iter()
        .flat_map(|(w, _)| w.iter().map(|v| (WARM_START_GAIN * v) as f32))
        .collect();
    let bias: Vec<f32> = rows
        .iter()
        .map(|(_, b)| (WARM_START_GAIN * b) as f32)
        .collect();
    let device = x.device();
    for (name, var) in head {
        let value = match name.as_str() {
            "head.weight" => Tensor::from_vec(weight.clone(), (classes, d), device)?,
            "head.bias" => Tensor::from_vec(bias.clone(), classes, device)?,
            norm if norm.starts_with("head.norm.") => continue,
            other => return Err(Error::Other(format!("unexpected head variable {other}"))),
        };
        var.set(&value)?;
    }
    Ok(())
}

/// The classifier's parameter groups. Under `finetune` the head first gets its LP-FT warm
/// start on `train`, and the encoder learns at `FINETUNE_ENCODER_LR_SCALE` of its rate.
fn param_groups(
    model: &Classifier,
    varmap: &VarMap,
    protocol: Protocol,
    (x, train): (&Tensor, &Prepared),
) -> Result<Vec<ParamGroup>> {
    if protocol != Protocol::Finetune {
        return Ok(vec![ParamGroup {
            vars: params::trainable(varmap, ""),
            lr_scale: 1.0,
        }]);
    }
    warm_start_head(model, varmap, x, &train.labels)?;
    let (head, encoder): (Vec<_>, Vec<_>) = params::trainable(varmap, "")
        .into_iter()
        .partition(|(name, _)| name.starts_with("head."));
    Ok(vec![
        ParamGroup {
            vars: head,
            lr_scale: 1.0,
        },
        ParamGroup {
            vars: encoder,
            lr_scale: FINETUNE_ENCODER_LR_SCALE,
        },
    ])
}

/// The classifier's TEST predictions.
fn predict(model: &Classifier, test: &Prepared, device: &Device) -> Result<Vec<usize>> {
    let (sx, sy) = split_tensors(test, device)?;
    let logits = |x: &Tensor, train: bool| model.logits(x, train);
    let (_, _, predictions) = evaluate(&logits, &Batchable { x: &sx, y: &sy })?;
    Ok(predictions)
}

/// Where every fit starts: the classifier initialised from `init` (see
/// `initialised_classifier`), `train`'s tensors, and its parameter groups.
struct Start {
    model: Classifier,
    varmap: VarMap,
    x: Tensor,
    y: Tensor,
    groups: Vec<ParamGroup>,
}

impl Start {
    fn new(
        req: &TransferRequest,
        cfg: &EncoderConfig,
        shape: [usize; 2],
        train: &Prepared,
        init: &mut SampleRng,
    ) -> Result<Start> {
        let (model, varmap) = initialised_classifier(req, cfg, shape, init)?;
        let (x, y) = split_tensors(train, &req.device)?;
        let groups = param_groups(&model, &varmap, req.protocol, (&x, train))?;
        Ok(Start {
            model,
            varmap,
            x,
            y,
            groups,
        })
    }
}

/// Holds a stratified share of TRAIN out, trains every weight of the classifier on the rest,
/// selects the epoch on the held-out cases, and predicts `test` once.
fn holdout_and_score(
    req: &TransferRequest,
    cfg: &EncoderConfig,
    shape: [usize; 2],
    [train_all, test]: [&Prepared; 2],
    rng: &mut SampleRng,
    progress: &dyn Fn(TransferProgress),
) -> Result<Outcome> {
    let device = &req.device;
    let (train_idx, val_idx) = stratified_split(&train_all.labels, req.val_fraction, rng);
    let (train, val) = (train_all.subset(&train_idx), train_all.subset(&val_idx));
    let Start {
        model,
        varmap,
        x,
        y,
        groups,
    } = Start::new(req, cfg, shape, &train, rng)?;
    let (vx, vy) = split_tensors(&val, device)?;
    let logits = |x: &Tensor, train: bool| model.logits(x, train);
    let on_epoch =
        |epoch: usize, val_loss: f64| progress(TransferProgress::Epoch { epoch, val_loss });
    let report = fit(
        &logits,
        groups,
        req.protocol == Protocol::Finetune,
        &varmap,
        &Batchable { x: &x, y: &y },
        &Batchable { x: &vx, y: &vy },
        &req.fit,
        rng,
        &on_epoch,
    )?;
    Ok((report, predict(&model, test, device)?, varmap))
}

/// Splits TRAIN into `k` stratified folds and runs the fixed schedule on each (trained on the
/// other folds, scored on it), every run from the same initial weights. The epoch count with
/// the best mean validation accuracy is then trained on all of TRAIN, from those weights
/// again, and `test` predicted once.
fn kfold_and_score(
    req: &TransferRequest,
    cfg: &EncoderConfig,
    shape: [usize; 2],
    k: usize,
    [train_all, test]: [&Prepared; 2],
    rng: &mut SampleRng,
    progress: &dyn Fn(TransferProgress),
) -> Result<Outcome> {
    let device = &req.device;
    let folds = stratified_folds(&train_all.labels, k, rng);
    let k = folds.len(); // fewer with fewer cases than folds
                         // The shared initial weights get a stream of their own, apart from the shuffles.
    let init = SampleRng::from_rng(rng);
    let on_epoch =
        |epoch: usize, val_loss: f64| progress(TransferProgress::Epoch { epoch, val_loss });
    let mut curves = Vec::with_capacity(k);
    for (fold, (train_idx, val_idx)) in folds.iter().enumerate() {
        progress(TransferProgress::Fold { fold, of: k });
        let (train, val) = (train_all.subset(train_idx), train_all.subset(val_idx));
        let start = Start::new(req, cfg, shape, &train, &mut init.clone())?;
        let (vx, vy) = split_tensors(&val, device)?;
        let logits = |x: &Tensor, train: bool| start.model.logits(x, train);
        curves.push(validation_curve(
            &logits,
            start.groups,
            &Batchable {
                x: &start.x,
                y: &start.y,
            },
            &Batchable { x: &vx, y: &vy },
            &req.fit,
            rng,
            &on_epoch,
        )?);
    }
    let (epochs, val_loss, val_accuracy) =
        best_mean_epoch(&curves, req.protocol == Protocol::Finetune);
    progress(TransferProgress::Fold { fold: k, of: k });
    let Start {
        model,
        varmap,
        x,
        y,
        groups,
    } = Start::new(req, cfg, shape, train_all, &mut init.clone())?;
    let logits = |x: &Tensor, train: bool| model.logits(x, train);
    fit_epochs(
        &logits,
        groups,
        &Batchable { x: &x, y: &y },
        epochs,
        &req.fit,
        rng,
    )?;
    let report = FitReport {
        epochs_run: epochs,
        best_epoch: epochs,
        best_val_loss: val_loss,
        best_val_accuracy: val_accuracy,
        folds: Some(k),
    };
    Ok((report, predict(&model, test, device)?, varmap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{export_encoder, SeriesConfig, SeriesEncoder, TransformerConfig};
    use crate::ops::testing::assert_every_gradient_nonzero;

    fn series_config() -> SeriesConfig {
        SeriesConfig {
            length: 32,
            patch: 8,
            transformer: TransformerConfig {
                d_model: 16,
                heads: 2,
                d_ff: 32,
                layers: 1,
            },
        }
    }

    /// A run directory's encoder as `s2kit pretrain` exports it (the series encoder lives under
    /// `series.` in the pretraining model), with weights drawn from `seed`; and its features of
    /// `x` in the pretraining model itself.
    fn pretrained(dir: &Path, seed: u64, x: &Tensor) -> (Vec<f32>, Vec<f32>) {
        let (cfg, device) = (series_config(), Device::Cpu);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device).pp("series");
        let encoder = SeriesEncoder::new(&cfg, vb).unwrap();
        params::seeded_init(&varmap, &mut sample_rng(seed, 0)).unwrap();
        export_encoder(
            dir,
            &EncoderConfig::PatchTransformer(cfg),
            &varmap,
            "series",
        )
        .unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1().unwrap();
        (
            flat(encoder.forward_t(x, false).unwrap()),
            flat(encoder.readout(x, None).unwrap()),
        )
    }

    /// The linear probe's features of `x` [batch, 32] from the saved encoder in `dir`.
    fn probe_features(dir: &Path, x: &Tensor) -> Vec<f32> {
        let n = x.dim(0).unwrap();
        let cases = Prepared {
            values: x.flatten_all().unwrap().to_vec1().unwrap(),
            levels: vec![0.0; 2 * n],
            labels: vec![0; n],
            n,
            channels: 1,
            length: 32,
        };
        let cfg = EncoderConfig::load(dir).unwrap();
        let model = ModelSpec::Saved(dir.to_path_buf());
        let mut rng = sample_rng(0, 7);
        let (train, _) = frozen_features(
            &model,
            Some(&cfg),
            Readout::default(),
            [&cases, &cases],
            &mut rng,
            &Device::Cpu,
        )
        .unwrap();
        train.concat()
    }

    /// A request for `protocol` on the saved encoder in `dir`, with `head`.
    fn request(dir: &Path, protocol: Protocol, head: Head) -> TransferRequest {
        TransferRequest {
            dataset: PathBuf::new(),
            model: ModelSpec::Saved(dir.to_path_buf()),
            protocol,
            seeds: 1,
            fit: FitConfig::default(),
            val_fraction: 0.2,
            folds: None,
            head,
            save_encoder: None,
            overwrite: false,
            layer: None,
            choose_layer: false,
            levels: false,
            native: false,
            device: Device::Cpu,
        }
    }

    /// The classifier `run_transfer` builds for `protocol` (the same initialisation seed every
    /// time), for one channel and two classes.
    fn classifier(dir: &Path, protocol: Protocol, head: Head) -> (Classifier, VarMap) {
        let cfg = EncoderConfig::load(dir).unwrap();
        let req = request(dir, protocol, head);
        initialised_classifier(&req, &cfg, [1, 2], &mut sample_rng(0, 7)).unwrap()
    }

    /// The features a protocol's classifier computes for `x` [batch, 1, length].
    fn features(dir: &Path, protocol: Protocol, x: &Tensor) -> Vec<f32> {
        let (classifier, _) = classifier(dir, protocol, Head::Linear);
        let f = classifier
            .features(&x.unsqueeze(1).unwrap(), false)
            .unwrap();
        f.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn transferred_encoders_carry_the_pretrained_weights() {
        let root = tempfile::tempdir().unwrap();
        let x = crate::ops::testing::randn(&[3, 32], 1.0);
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let ((own_a, readout_a), (own_b, readout_b)) =
            (pretrained(&a, 1, &x), pretrained(&b, 2, &x));
        // Exactly the pretraining model's features, so they differ between the runs: the
        // fine-tuned classifier starts from them, and the linear probe reads them.
        assert_eq!(features(&a, Protocol::Finetune, &x), own_a);
        assert_eq!(features(&b, Protocol::Finetune, &x), own_b);
        assert_eq!(probe_features(&a, &x), readout_a);
        assert_eq!(probe_features(&b, &x), readout_b);
        assert_ne!(own_a, own_b);
        // From scratch, the saved weights are ignored: the same features whichever run.
        assert_eq!(
            features(&a, Protocol::Scratch, &x),
            features(&b, Protocol::Scratch, &x)
        );
        assert_ne!(features(&a, Protocol::Scratch, &x), own_a);
    }

    #[test]
    fn every_weight_of_a_batchnorm_head_classifier_gets_a_gradient() {
        let root = tempfile::tempdir().unwrap();
        let x = crate::ops::testing::randn(&[4, 32], 1.0);
        pretrained(root.path(), 1, &x);
        let (model, varmap) = classifier(root.path(), Protocol::Finetune, Head::BatchNorm);
        let logits = model.logits(&x.unsqueeze(1).unwrap(), true).unwrap();
        let y = Tensor::new(&[0u32, 1, 0, 1], &Device::Cpu).unwrap();
        let grads = candle_nn::loss::cross_entropy(&logits, &y)
            .unwrap()
            .backward()
            .unwrap();
        let trainable = params::trainable(&varmap, "");
        assert!(trainable.iter().any(|(n, _)| n == "head.norm.weight"));
        // The mask token stands in for masked patches, which only pretraining has.
        let used: Vec<_> = trainable
            .into_iter()
            .filter(|(n, _)| n != "encoder.mask_token")
            .collect();
        assert_every_gradient_nonzero(&grads, &used);
    }
}
