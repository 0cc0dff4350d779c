//! Excitations: the input series x. Each method is one module behind the [`Excitation`]
//! trait; [`ExcitationSampler`] picks a method per channel with the preset's probabilities.

mod arma;
mod forecast_pfn;
mod imf;
mod kernel_synth;
mod mixture;

pub use arma::{Arma, ArmaConfig};
pub use forecast_pfn::{ForecastPfn, ForecastPfnConfig};
pub use imf::{Imf, ImfConfig};
pub use kernel_synth::{KernelSynth, KernelSynthConfig};
pub use mixture::{Mixture, MixtureConfig};

use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand_distr::{weighted::WeightedIndex, Distribution};
use serde::{Deserialize, Serialize};

/// One way of drawing a single input channel of a given length.
pub trait Excitation: Send + Sync {
    fn sample(&self, rng: &mut SampleRng, len: usize) -> Vec<f64>;
}

/// Probability of each method (normalised). Defaults are the reference's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MethodWeights {
    pub mixture: f64,
    pub arma: f64,
    pub forecast_pfn: f64,
    pub kernel_synth: f64,
    pub imf: f64,
}

impl Default for MethodWeights {
    fn default() -> Self {
        MethodWeights {
            mixture: 0.10,
            arma: 0.20,
            forecast_pfn: 0.35,
            kernel_synth: 0.25,
            imf: 0.10,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExcitationConfig {
    pub weights: MethodWeights,
    pub mixture: MixtureConfig,
    pub arma: ArmaConfig,
    pub kernel_synth: KernelSynthConfig,
    pub forecast_pfn: ForecastPfnConfig,
    pub imf: ImfConfig,
}

impl ExcitationConfig {
    pub fn validate(&self) -> Result<()> {
        let w = &self.weights;
        let ws = [w.mixture, w.arma, w.forecast_pfn, w.kernel_synth, w.imf];
        if ws.iter().any(|x| !x.is_finite() || *x < 0.0) || ws.iter().sum::<f64>() <= 0.0 {
            return Err(Error::Config(
                "excitation.weights must be >= 0 with a positive sum".into(),
            ));
        }
        self.mixture.validate()?;
        self.arma.validate()?;
        self.kernel_synth.validate()?;
        self.forecast_pfn.validate()?;
        self.imf.validate()
    }
}

/// Method names in the order of their codes (stored per input row as `input_method`).
const METHOD_NAMES: [&str; 5] = ["mixture", "arma", "forecast_pfn", "kernel_synth", "imf"];

/// The name of method `code`, or "unknown".
pub fn method_name(code: u8) -> &'static str {
    METHOD_NAMES
        .get(code as usize)
        .copied()
        .unwrap_or("unknown")
}

/// Draws channels with a method chosen per channel.
pub struct ExcitationSampler {
    /// (code, method) for every method with positive weight.
    methods: Vec<(u8, Box<dyn Excitation>)>,
    choose: WeightedIndex<f64>,
}

impl ExcitationSampler {
    /// A sampler for channels of `len` points (other lengths work, a little slower).
    pub fn new(cfg: &ExcitationConfig, len: usize) -> Result<Self> {
        cfg.validate()?;
        let w = &cfg.weights;
        let all: Vec<(f64, Box<dyn Excitation>)> = vec![
            (w.mixture, Box::new(Mixture::new(cfg.mixture.clone()))),
            (w.arma, Box::new(Arma::new(cfg.arma.clone()))),
            (
                w.forecast_pfn,
                Box::new(ForecastPfn::new(cfg.forecast_pfn.clone())),
            ),
            (
                w.kernel_synth,
                Box::new(KernelSynth::new(cfg.kernel_synth.clone(), len)),
            ),
            (w.imf, Box::new(Imf::new(cfg.imf.clone()))),
        ];
        let (weights, methods): (Vec<f64>, Vec<_>) = all
            .into_iter()
            .enumerate()
            .filter(|(_, (w, _))| *w > 0.0)
            .map(|(code, (w, m))| (w, (code as u8, m)))
            .unzip();
        let choose = WeightedIndex::new(weights).map_err(|e| Error::Config(e.to_string()))?;
        Ok(ExcitationSampler { methods, choose })
    }

    /// One channel and the code of the method that drew it (an index into [`METHOD_NAMES`]).
    pub fn sample_channel(&self, rng: &mut SampleRng, len: usize) -> (Vec<f64>, u8) {
        let (code, method) = &self.methods[self.choose.sample(rng)];
        (method.sample(rng, len), *code)
    }
}

/// Mean and population standard deviation.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}
