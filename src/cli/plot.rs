use clap::Args;
use s2kit::excitation::METHOD_NAMES;
use s2kit::generate::SampleKind;
use s2kit::plot::{render_panels, Panel};
use s2kit::store::Corpus;
use s2kit::{Error, Result};
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
    if a.count == 0 || a.max_outputs == 0 {
        return Err(Error::Usage(
            "--count and --max-outputs must be at least 1".into(),
        ));
    }
    let corpus = Corpus::open(&a.corpus)?;
    let mut panels = Vec::new();
    let mut shown = 0;
    'shards: for i in 0..corpus.manifest.shards.len() {
        let shard = corpus.read_shard(i)?;
        for k in 0..shard.n_samples() {
            if shown == a.count {
                break 'shards;
            }
            let s = shard.sample(k);
            let methods: Vec<&str> = s
                .input_methods
                .iter()
                .map(|m| METHOD_NAMES.get(*m as usize).copied().unwrap_or("?"))
                .collect();
            let title = if s.inputs.is_empty() {
                format!("#{} inputs: none (autonomous ODE)", s.id)
            } else {
                format!("#{} inputs: {}", s.id, methods.join(", "))
            };
            panels.push(Panel {
                title,
                series: s.inputs.clone(),
            });
            for col in 0..a.max_outputs {
                let (title, series) = match (s.outputs.get(col), s.symbols.get(col)) {
                    (Some(y), Some(sym)) => {
                        let lhs = match s.kind {
                            SampleKind::Ode => format!("dy{col}/dt = "),
                            SampleKind::Explicit => format!("y{col} = "),
                        };
                        println!("#{} {lhs}{sym}", s.id);
                        (format!("{lhs}{sym}"), vec![y.clone()])
                    }
                    _ => (String::new(), vec![]),
                };
                panels.push(Panel { title, series });
            }
            shown += 1;
        }
    }
    if shown == 0 {
        return Err(Error::corpus(
            &a.corpus,
            "the corpus holds no samples to plot",
        ));
    }
    render_panels(&a.out, &panels, 1 + a.max_outputs, (480, 220))?;
    println!("{}: plotted {shown} samples", a.out.display());
    Ok(())
}
