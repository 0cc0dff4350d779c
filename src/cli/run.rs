use super::progress;
use clap::Args;
use s2kit::pipeline::{format_table, run_pipeline, PipelineRecipe, Stage};
use s2kit::Result;
use std::path::PathBuf;

/// Run the whole pipeline from one recipe: generate a corpus, pretrain on it, and compare
/// the pretrained encoder (linear probe, fine-tune) with the same architecture from scratch
/// and an FCN on real classification sets. Finished stages in the run directory are reused.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline recipe, e.g. recipes/quickstart.toml.
    recipe: PathBuf,
    /// Where pretraining and transfer run: cpu, or cuda / cuda:N in a build with
    /// `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Remove and redo any finished stage whose inputs changed since it ran (its recipe
    /// section, its preset, or the stage before it). Without it such a stage is refused.
    #[arg(long)]
    rerun_stale: bool,
}

pub fn run(a: RunArgs) -> Result<()> {
    let recipe = PipelineRecipe::from_file(&a.recipe)?;
    let device = s2kit::runtime::device(&a.device)?;
    let pb = progress::bar(0, "");
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    // Off a terminal the bar is hidden; one line per stage keeps logs informative.
    let log = |line: String| {
        if pb.is_hidden() {
            eprintln!("{line}");
        }
        pb.set_message(line);
    };
    let report = run_pipeline(&recipe, &device, a.rerun_stale, &|stage| match stage {
        Stage::Generating => log("generating the corpus".into()),
        Stage::Pretraining { step, steps, loss } => {
            pb.set_length(steps as u64);
            pb.set_position(step as u64);
            if step == 1 || step == steps || step % 50 == 0 {
                log(format!("pretraining: step {step}/{steps}, loss {loss:.3}"));
            }
        }
        Stage::Transferring { dataset, column } => {
            pb.set_length(0);
            log(format!("transfer: {dataset}, {column}"));
        }
        Stage::Replacing { path, why } => {
            // Kept on screen, not overwritten by the next stage: the user should see it.
            pb.suspend(|| eprintln!("replacing {}: {why}", path.display()));
        }
    })?;
    pb.finish_and_clear();
    println!("{}", format_table(&report));
    println!(
        "outputs under {} (summary.md, summary.json, corpus/, pretrain/, transfer/)",
        recipe.out.display()
    );
    Ok(())
}
