//! Corpus statistics for `s2kit inspect`: counts, dimension histograms, operator frequencies,
//! value ranges, kinds, and the reject / failure rates of generation.

use crate::error::Error;
use crate::error::Result;
use crate::excitation::method_name;
use crate::ode::System;
use crate::plot::{render_panels, Panel};
use crate::store::{Corpus, Rejections, SampleKind, ShardData, NOT_ODE};
use crate::symbolic::operator_counts;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct ValueStats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    #[serde(skip)]
    sum: f64,
    #[serde(skip)]
    sum_sq: f64,
}

impl ValueStats {
    fn add(&mut self, values: &[f32]) {
        for &v in values {
            let v = v as f64;
            if self.count == 0 {
                self.min = v;
                self.max = v;
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v;
            self.sum_sq += v * v;
            self.count += 1;
        }
    }

    fn finish(&mut self) {
        if self.count > 0 {
            let n = self.count as f64;
            self.mean = self.sum / n;
            self.std = (self.sum_sq / n - self.mean * self.mean).max(0.0).sqrt();
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct CorpusSummary {
    pub shards: usize,
    pub length: usize,
    pub seed: u64,
    /// Sample ids covered by the corpus.
    pub ids: u64,
    pub samples: u64,
    /// Ids whose attempt budget ran out: failed / ids.
    pub failed: u64,
    pub failure_rate: f64,
    /// Candidates rejected by validation, and the share of all candidates they make up.
    pub rejected_candidates: u64,
    pub reject_rate: f64,
    /// Mean rejected candidates per accepted sample.
    pub retries_per_sample: f64,
    /// The rejected candidates by reason (zeros for corpora written before reasons were
    /// counted).
    pub rejections: Rejections,
    pub kinds: BTreeMap<String, u64>,
    pub ode_systems: BTreeMap<String, u64>,
    pub input_dims: BTreeMap<usize, u64>,
    pub output_dims: BTreeMap<usize, u64>,
    pub excitation_methods: BTreeMap<String, u64>,
    pub operators: BTreeMap<String, u64>,
    pub mean_symbol_chars: f64,
    pub inputs: ValueStats,
    pub outputs: ValueStats,
}

fn system_name(code: u8) -> String {
    match code {
        0 => "random_rhs".into(),
        c => System::ALL
            .get(c as usize - 1)
            .map(|s| s.name().to_string())
            .unwrap_or_else(|| format!("unknown_{c}")),
    }
}

fn add_shard(sum: &mut CorpusSummary, shard: &ShardData, symbol_chars: &mut u64) {
    for i in 0..shard.n_samples() {
        let kind = SampleKind::from_code(shard.kind[i]).map_or("unknown", SampleKind::name);
        *sum.kinds.entry(kind.into()).or_default() += 1;
        if shard.ode_system[i] != NOT_ODE {
            *sum.ode_systems
                .entry(system_name(shard.ode_system[i]))
                .or_default() += 1;
        }
        let n_in = (shard.input_offsets[i + 1] - shard.input_offsets[i]) as usize;
        let n_out = (shard.output_offsets[i + 1] - shard.output_offsets[i]) as usize;
        *sum.input_dims.entry(n_in).or_default() += 1;
        *sum.output_dims.entry(n_out).or_default() += 1;
    }
    for m in &shard.input_method {
        *sum.excitation_methods
            .entry(method_name(*m).into())
            .or_default() += 1;
    }
    for s in &shard.symbols {
        for (name, count) in operator_counts(s) {
            if count > 0 {
                *sum.operators.entry(name.to_string()).or_default() += count;
            }
        }
        *symbol_chars += s.len() as u64;
    }
    sum.inputs.add(&shard.inputs);
    sum.outputs.add(&shard.outputs);
}

/// Reads every shard once; `on_shard` is called after each, for progress display.
pub fn summarize(corpus: &Corpus, on_shard: &dyn Fn()) -> Result<CorpusSummary> {
    let m = &corpus.manifest;
    let mut sum = CorpusSummary {
        shards: m.shards.len(),
        length: m.spec.length,
        seed: m.spec.seed,
        ids: m.spec.samples,
        ..Default::default()
    };
    let mut symbol_chars = 0u64;
    for (i, entry) in m.shards.iter().enumerate() {
        let shard = corpus.read_shard(i)?;
        add_shard(&mut sum, &shard, &mut symbol_chars);
        sum.samples += entry.samples;
        sum.failed += entry.failed;
        sum.rejected_candidates += entry.rejected;
        sum.rejections.add(&entry.rejections);
        on_shard();
    }
    sum.inputs.finish();
    sum.outputs.finish();
    let n_symbols: u64 = sum.output_dims.iter().map(|(d, c)| *d as u64 * c).sum();
    sum.mean_symbol_chars = symbol_chars as f64 / n_symbols.max(1) as f64;
    sum.failure_rate = sum.failed as f64 / sum.ids.max(1) as f64;
    let candidates = sum.rejected_candidates + sum.samples;
    sum.reject_rate = sum.rejected_candidates as f64 / candidates.max(1) as f64;
    sum.retries_per_sample = sum.rejected_candidates as f64 / sum.samples.max(1) as f64;
    Ok(sum)
}

/// The most samples one picture shows (a row each).
const MAX_PLOTTED: usize = 500;

/// Draws the first `count` samples of `corpus` to the PNG `out`: one row per sample, its
/// inputs, then up to `max_outputs` outputs titled by their symbols (shortened to fit).
/// Returns each drawn output's full equation, `(sample id, "y0 = ...")`.
pub fn plot_samples(
    corpus: &Corpus,
    out: &Path,
    count: usize,
    max_outputs: usize,
) -> Result<Vec<(u64, String)>> {
    if !(1..=MAX_PLOTTED).contains(&count) || !(1..=64).contains(&max_outputs) {
        return Err(Error::Request(format!(
            "--count must lie in [1, {MAX_PLOTTED}] and --max-outputs in [1, 64]"
        )));
    }
    let mut panels = Vec::new();
    let mut equations = Vec::new();
    let mut shown = 0;
    'shards: for i in 0..corpus.manifest.shards.len() {
        let shard = corpus.read_shard(i)?;
        for k in 0..shard.n_samples() {
            if shown == count {
                break 'shards;
            }
            let s = shard.sample(k);
            let methods: Vec<&str> = s.input_methods.iter().map(|&m| method_name(m)).collect();
            let title = if s.inputs.is_empty() {
                format!("#{} inputs: none (autonomous ODE)", s.id)
            } else {
                format!("#{} inputs: {}", s.id, methods.join(", "))
            };
            panels.push(Panel {
                title,
                series: s.inputs.clone(),
            });
            for col in 0..max_outputs {
                let (title, series) = match (s.outputs.get(col), s.symbols.get(col)) {
                    (Some(y), Some(sym)) => {
                        let lhs = match s.kind {
                            SampleKind::Ode => format!("dy{col}/dt = "),
                            SampleKind::Explicit => format!("y{col} = "),
                        };
                        equations.push((s.id, format!("{lhs}{sym}")));
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
            &corpus.dir,
            "the corpus holds no samples to plot",
        ));
    }
    render_panels(out, &panels, 1 + max_outputs, (480, 220))?;
    Ok(equations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_counted_from_the_printed_form() {
        let mut c = BTreeMap::new();
        for symbol in [
            "((-0.5) + (2 * sqrt(abs((x0 - atan(x1))))))",
            "((1 / ln(abs(tan(x0)))))^2",
        ] {
            for (name, n) in operator_counts(symbol) {
                *c.entry(name).or_insert(0) += n;
            }
        }
        let get = |k: &str| c.get(k).copied().unwrap_or(0);
        assert_eq!(
            (
                get("add"),
                get("mul"),
                get("sub"),
                get("sqrt"),
                get("abs"),
                get("arctan")
            ),
            (1, 1, 1, 1, 0, 1)
        );
        assert_eq!(
            (get("inv"), get("log"), get("tan"), get("pow2")),
            (1, 1, 1, 1)
        );
    }
}
