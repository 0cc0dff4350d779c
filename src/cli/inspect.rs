use super::progress;
use clap::Args;
use s2kit::inspect::{summarize, CorpusSummary};
use s2kit::store::Corpus;
use s2kit::Result;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;

/// Summarise a corpus: counts, dimension histograms, operator frequencies, value ranges,
/// kinds, and failure / retry rates.
#[derive(Args, Debug)]
pub struct InspectArgs {
    corpus: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Also recompute every shard's SHA-256 and compare it with the manifest.
    #[arg(long)]
    verify: bool,
}

fn histogram<K: Display>(title: &str, map: &BTreeMap<K, u64>) {
    let total: u64 = map.values().sum();
    println!("{title}:");
    for (k, v) in map {
        println!(
            "  {k:>18}  {v:>10}  {:5.1}%",
            100.0 * *v as f64 / total.max(1) as f64
        );
    }
}

fn print_text(c: &CorpusSummary) {
    println!(
        "shards {}   length {}   seed {}",
        c.shards, c.length, c.seed
    );
    println!(
        "sample ids {}   accepted {}   failed {} ({:.2}%)",
        c.ids,
        c.samples,
        c.failed,
        100.0 * c.failure_rate
    );
    println!(
        "rejected candidates {} ({:.1}% of candidates; {:.2} retries per accepted sample)",
        c.rejected_candidates,
        100.0 * c.reject_rate,
        c.retries_per_sample
    );
    let reasons: Vec<String> = c
        .rejections
        .named()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if !reasons.is_empty() {
        println!("  by reason: {}", reasons.join(", "));
    }
    histogram("kinds", &c.kinds);
    if !c.ode_systems.is_empty() {
        histogram("ODE systems", &c.ode_systems);
    }
    histogram("input dims", &c.input_dims);
    histogram("output dims", &c.output_dims);
    histogram(
        "excitation methods (per input channel)",
        &c.excitation_methods,
    );
    histogram("operators", &c.operators);
    println!("mean symbol length: {:.1} characters", c.mean_symbol_chars);
    for (name, v) in [("inputs", &c.inputs), ("outputs", &c.outputs)] {
        println!(
            "{name:>7}: {} values in [{:.4}, {:.4}], mean {:.4}, std {:.4}",
            v.count, v.min, v.max, v.mean, v.std
        );
    }
}

pub fn run(a: InspectArgs) -> Result<()> {
    let corpus = Corpus::open(&a.corpus)?;
    if a.verify {
        corpus.verify()?;
    }
    let pb = progress::bar(corpus.manifest.shards.len() as u64, "shards");
    let summary = summarize(&corpus, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("JSON"));
    } else {
        print_text(&summary);
        if a.verify {
            println!(
                "checksums: all {} shards match the manifest",
                summary.shards
            );
        }
    }
    Ok(())
}
