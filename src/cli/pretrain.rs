use super::progress;
use clap::Args;
use s2kit::pretrain::{pretrain, PretrainRecipe, PretrainRequest};
use s2kit::Result;
use std::path::PathBuf;

/// Pretrain a series encoder on a corpus with the recipe's objective: `symtime` (masked
/// patches, masked symbols, series-symbol momentum contrast; the default), `views`
/// (crop-and-resize view contrast), `timemae`, `fei` or `crosstimenet`.
///
/// Writes metrics.csv, losses.png, atomic checkpoints and the series encoder (encoder.json,
/// encoder.safetensors) into --out; `s2kit transfer --model OUT` evaluates that encoder.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Recipe TOML, e.g. recipes/pretrain-tiny.toml.
    #[arg(long)]
    recipe: PathBuf,
    /// Corpus directory written by `s2kit generate`.
    #[arg(long)]
    data: PathBuf,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue from the run's last checkpoint (the recipe must be unchanged).
    #[arg(long)]
    resume: bool,
    /// Stop after this step with a checkpoint (e.g. to fit a job's time limit); resume later.
    #[arg(long)]
    stop_at: Option<usize>,
    /// Where to train: cpu, or cuda / cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: PretrainArgs) -> Result<()> {
    let recipe = PretrainRecipe::from_file(&a.recipe)?;
    let device = s2kit::runtime::device(&a.device)?;
    let pb = progress::bar(recipe.train.steps as u64, "steps");
    let req = PretrainRequest {
        recipe,
        device,
        data: a.data,
        out: a.out.clone(),
        resume: a.resume,
        stop_at: a.stop_at,
    };
    let summary = pretrain(&req, &|r| {
        pb.set_position(r.step as u64);
        pb.set_message(format!(
            "loss {:.3} ({}) {:.0} pairs/s",
            r.report.total,
            terms(r.columns, &r.report.values, 3),
            r.pairs_per_second
        ));
    })?;
    pb.finish_and_clear();
    match &summary.final_report {
        Some(r) => println!(
            "{}: steps {}..{} in {:.1} s; final loss {:.4} ({})",
            a.out.display(),
            summary.first_step,
            summary.last_step,
            summary.seconds,
            r.total,
            terms(summary.columns, &r.values, 4)
        ),
        None => println!(
            "{}: already at step {}; nothing to train",
            a.out.display(),
            summary.first_step
        ),
    }
    println!(
        "metrics: {0}/metrics.csv, curves: {0}/losses.png, encoder: {0}/encoder.json",
        a.out.display()
    );
    Ok(())
}

/// "name value, name value, …" with `digits` decimals.
fn terms(columns: &[&str], values: &[f32], digits: usize) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{c} {v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
