use clap::Args;
use s2kit::checks::check_output_file;
use s2kit::transfer::{embed, EmbedRequest, ModelSpec};
use s2kit::Result;
use std::path::PathBuf;

/// Write the frozen features of a dataset's TRAIN and TEST cases, with labels and class
/// names, to an HDF5 file (datasets train_features, train_labels, test_features,
/// test_labels, class_names), for any classifier.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// A saved encoder directory (from pretraining or --save-encoder), or `minirocket`.
    #[arg(long)]
    model: String,
    /// Directory holding NAME_TRAIN.ts and NAME_TEST.ts.
    #[arg(long)]
    dataset: PathBuf,
    /// The HDF5 file to write.
    #[arg(long)]
    out: PathBuf,
    /// The encoder layer to read, from 1; default: the last.
    #[arg(long)]
    layer: Option<usize>,
    /// Read the series at the dataset's own length (the longest TRAIN case; unequal lengths
    /// are still resampled to it) instead of the encoder's window: shorter ones fill fewer
    /// patches, longer ones are read window by window and their features averaged.
    #[arg(long)]
    native: bool,
    /// MiniRocket's seed (encoder features do not depend on it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
    /// cpu, or cuda / cuda:N in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    check_output_file(&a.out, a.force)?;
    let req = EmbedRequest {
        dataset: a.dataset,
        model: ModelSpec::parse(&a.model),
        layer: a.layer,
        native: a.native,
        seed: a.seed,
        device: s2kit::runtime::device(&a.device)?,
    };
    let embedding = embed(&req)?;
    embedding.write(&a.out, a.force)?;
    let width = embedding.train.features.first().map_or(0, Vec::len);
    println!(
        "{}: {} TRAIN and {} TEST cases of {width} features ({}, {})",
        a.out.display(),
        embedding.train.features.len(),
        embedding.test.features.len(),
        embedding.dataset,
        embedding.model
    );
    Ok(())
}
