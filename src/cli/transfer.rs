use super::progress;
use clap::Args;
use s2kit::checks::check_output_file;
use s2kit::transfer::{
    run_transfer, FitConfig, Head, ModelSpec, Protocol, TransferProgress, TransferRequest,
    DEFAULT_FOLDS,
};
use s2kit::Result;
use std::path::PathBuf;

/// Evaluate an encoder on a real classification set (UCR/UEA `.ts`).
///
/// Every choice is made on TRAIN: the linear probe's by leave-one-out error; under scratch and
/// finetune, the number of epochs by k-fold cross-validation (or, with --folds 0, the epoch,
/// the learning-rate schedule and early stopping on a stratified hold-out). TEST is scored
/// once per seed with the selected weights.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Directory holding NAME_TRAIN.ts and NAME_TEST.ts, e.g. data/ucr/GunPoint.
    #[arg(long)]
    dataset: PathBuf,
    /// `fcn` for a fresh FCN, `minirocket` for MiniRocket's fixed features, or a saved encoder
    /// directory (from --save-encoder or pretraining).
    #[arg(long)]
    model: String,
    /// scratch: random init, all weights trained. linear: frozen features standardised on
    /// TRAIN, ridge classifier with leave-one-out α. finetune: all weights trained from the
    /// saved encoder.
    #[arg(long)]
    protocol: Protocol,
    /// The encoder layer the linear probe reads ([CLS] and the mean patch state), from 1, or
    /// `auto`: every layer is read and the one with the lowest leave-one-out error on TRAIN
    /// kept (with its α and levels' weight); default: the last.
    #[arg(long)]
    layer: Option<LayerArg>,
    /// The linear probe also reads each channel's level (mean and log standard deviation),
    /// which z-normalisation hides from the encoder; the levels' weight is chosen on TRAIN
    /// by leave-one-out error, 0 included.
    #[arg(long)]
    levels: bool,
    /// The linear probe reads the series at the dataset's own length (the longest TRAIN case;
    /// unequal lengths are still resampled to it) instead of the encoder's window: shorter
    /// ones fill fewer patches, longer ones are read window by window and their features
    /// averaged.
    #[arg(long)]
    native: bool,
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Epochs of the schedule: under k-fold selection every one runs on every fold; on a
    /// hold-out (--folds 0) training stops earlier when the validation score stops improving.
    #[arg(long, default_value_t = FitConfig::default().max_epochs)]
    epochs: usize,
    /// Hold-out only (--folds 0): stop after this many epochs without a better validation
    /// score.
    #[arg(long, default_value_t = FitConfig::default().early_stop_patience)]
    patience: usize,
    #[arg(long, default_value_t = FitConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = FitConfig::default().lr)]
    lr: f64,
    /// Hold-out only (--folds 0): share of each TRAIN class held out for validation.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Under scratch and finetune: choose the number of epochs by stratified k-fold
    /// cross-validation on TRAIN (a fixed schedule, --epochs at --lr, run on each fold), then
    /// train on all of TRAIN for that many (default: 5; for `fcn`, whose recipe trains long
    /// with early stopping, the hold-out). 0: select the epoch on a hold-out of
    /// --val-fraction instead (one fit, not k + 1; for large sets).
    #[arg(long)]
    folds: Option<usize>,
    /// The head of scratch and finetune: linear, or batchnorm (batch normalisation of the
    /// features, then linear).
    #[arg(long, default_value = "linear")]
    head: Head,
    /// Save the first seed's selected encoder here (e.g. to fine-tune it on another set).
    #[arg(long)]
    save_encoder: Option<PathBuf>,
    /// Let --save-encoder replace the files of a non-empty directory.
    #[arg(long)]
    force: bool,
    /// Also write the full report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the classifiers train: cpu, or cuda / cuda:N in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: TransferArgs) -> Result<()> {
    if let Some(path) = &a.json {
        // A report rewrites its own earlier copy; a bad path is found before the work.
        check_output_file(path, true)?;
    }
    let model = ModelSpec::parse(&a.model);
    let req = TransferRequest {
        dataset: a.dataset,
        model: model.clone(),
        protocol: a.protocol,
        seeds: a.seeds,
        fit: FitConfig {
            max_epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            early_stop_patience: a.patience,
            ..FitConfig::default()
        },
        val_fraction: a.val_fraction,
        folds: match (a.folds, a.protocol) {
            (None, Protocol::Linear) => None,
            (None, _) if model == ModelSpec::Fcn => None,
            (None, _) => Some(DEFAULT_FOLDS),
            (Some(k), _) => (k > 0).then_some(k),
        },
        head: a.head,
        save_encoder: a.save_encoder,
        overwrite: a.force,
        layer: match a.layer {
            Some(LayerArg::Layer(n)) => Some(n),
            _ => None,
        },
        choose_layer: a.layer == Some(LayerArg::Auto),
        levels: a.levels,
        native: a.native,
        device: s2kit::runtime::device(&a.device)?,
    };
    let pb = progress::bar(req.fit.max_epochs as u64, "epochs");
    let report = run_transfer(&req, &|event| match event {
        TransferProgress::Seed { seed, of } => {
            pb.reset();
            pb.set_message(format!("seed {}/{of}", seed + 1));
        }
        TransferProgress::Fold { fold, of } => {
            pb.reset();
            pb.set_message(if fold < of {
                format!("fold {}/{of}", fold + 1)
            } else {
                "all of TRAIN".into()
            });
        }
        TransferProgress::Epoch { epoch, val_loss } => {
            pb.set_position(epoch as u64);
            pb.set_message(format!("val loss {val_loss:.4}"));
        }
    })?;
    pb.finish_and_clear();
    // The file first: a reader that closes the pipe early must not cost the report.
    if let Some(path) = &a.json {
        report.write_json(path)?;
    }
    print!("{report}");
    if let Some(path) = a.json {
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// `--layer`: a layer number, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LayerArg {
    Layer(usize),
    Auto,
}

impl std::str::FromStr for LayerArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(LayerArg::Auto),
            _ => s
                .parse()
                .map(LayerArg::Layer)
                .map_err(|_| format!("'{s}' is neither a layer number nor `auto`")),
        }
    }
}
