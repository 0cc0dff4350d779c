use clap::Args;
use s2kit::inspect::plot_samples;
use s2kit::store::Corpus;
use s2kit::Result;
use std::path::PathBuf;

/// Draw a grid of samples to PNG: one row per sample, with its inputs and each output titled
/// by its symbol. Titles are shortened to fit; the full symbols are printed.
#[derive(Args, Debug)]
pub struct PlotArgs {
    corpus: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Number of samples (the first ones of the corpus).
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Output panels per sample; further outputs are left out.
    #[arg(long, default_value_t = 3)]
    max_outputs: usize,
}

pub fn run(a: PlotArgs) -> Result<()> {
    let corpus = Corpus::open(&a.corpus)?;
    let equations = plot_samples(&corpus, &a.out, a.count, a.max_outputs)?;
    for (id, equation) in &equations {
        println!("#{id} {equation}");
    }
    let samples = equations
        .iter()
        .map(|(id, _)| id)
        .collect::<std::collections::BTreeSet<_>>();
    println!("{}: plotted {} samples", a.out.display(), samples.len());
    Ok(())
}
