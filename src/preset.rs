//! Generator presets: the TOML files under `generators/`. Every key has the reference's
//! default, unknown keys are errors, and `validate` rejects impossible values by name.

use crate::checks::{check_range, read_toml};
use crate::error::{Error, Result};
use crate::excitation::ExcitationConfig;
use crate::ode::OdeConfig;
use crate::symbolic::SymbolicConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Input and output channel counts, each drawn uniformly from its inclusive range.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DimsConfig {
    pub inputs: [usize; 2],
    pub outputs: [usize; 2],
}

impl Default for DimsConfig {
    fn default() -> Self {
        DimsConfig {
            inputs: [1, 1],
            outputs: [1, 1],
        }
    }
}

/// Relative frequency of explicit `y = f(x)` samples and ODE samples.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KindWeights {
    pub explicit: f64,
    pub ode: f64,
}

impl Default for KindWeights {
    fn default() -> Self {
        KindWeights {
            explicit: 1.0,
            ode: 0.0,
        }
    }
}

/// When a candidate sample is rejected, and how hard to try before giving up on a sample.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Outputs with any |y| above this are rejected.
    pub max_abs: f64,
    /// Outputs with std(y) <= min_rel_std · max(1, mean|y|) count as constant.
    pub min_rel_std: f64,
    /// Largest accepted relative sensitivity of an explicit output to its inputs.
    pub max_condition: f64,
    /// Candidate evaluations (input draws and tree draws) allowed per sample.
    pub max_attempts: u32,
    /// New trees tried on one input draw before the inputs are redrawn.
    pub tree_attempts: u32,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_abs: 1000.0,
            min_rel_std: 1e-4,
            max_condition: 1e3,
            max_attempts: 64,
            tree_attempts: 8,
        }
    }
}

/// The longest series a preset may ask for (a million points per channel).
pub const MAX_LENGTH: usize = 1 << 20;
/// The most output channels per sample.
pub const MAX_OUTPUTS: usize = 64;
/// The most candidates per sample: beyond it a preset that rejects everything looks hung.
pub const MAX_ATTEMPTS: u32 = 100_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Series length L.
    pub length: usize,
    pub dims: DimsConfig,
    pub kinds: KindWeights,
    /// Inputs are z-scored per channel, then multiplied by one scale ~ U(input_scale).
    pub input_scale: [f64; 2],
    pub excitation: ExcitationConfig,
    pub symbolic: SymbolicConfig,
    pub ode: OdeConfig,
    pub validation: ValidationConfig,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            length: 256,
            dims: DimsConfig::default(),
            kinds: KindWeights::default(),
            input_scale: [0.0, 16.0],
            excitation: ExcitationConfig::default(),
            symbolic: SymbolicConfig::default(),
            ode: OdeConfig::default(),
            validation: ValidationConfig::default(),
        }
    }
}

impl GeneratorConfig {
    /// Parses and validates a preset file.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_toml(path, GeneratorConfig::validate)
    }

    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_LENGTH).contains(&self.length) {
            return Err(Error::Config(format!(
                "length = {} but must lie in [2, {MAX_LENGTH}]",
                self.length
            )));
        }
        let d = &self.dims;
        check_range("dims.inputs", d.inputs[0] as f64, d.inputs[1] as f64, 1.0)?;
        check_range(
            "dims.outputs",
            d.outputs[0] as f64,
            d.outputs[1] as f64,
            1.0,
        )?;
        if d.inputs[1] > 6 {
            // Symbols name inputs x0..x5, as in the reference.
            return Err(Error::Config(
                "dims.inputs: at most 6 inputs are supported".into(),
            ));
        }
        if d.outputs[1] > MAX_OUTPUTS {
            return Err(Error::Config(format!(
                "dims.outputs: at most {MAX_OUTPUTS} outputs are supported"
            )));
        }
        let k = &self.kinds;
        let weight = |w: f64| w.is_finite() && w >= 0.0;
        if !(weight(k.explicit) && weight(k.ode) && k.explicit + k.ode > 0.0) {
            return Err(Error::Config(
                "kinds: weights must be finite and >= 0 with a positive sum".into(),
            ));
        }
        check_range("input_scale", self.input_scale[0], self.input_scale[1], 0.0)?;
        let v = &self.validation;
        // Written so that NaN fails too; infinity means "no bound" where a bound is allowed.
        if !(v.max_abs > 0.0
            && v.max_condition > 0.0
            && v.min_rel_std.is_finite()
            && v.min_rel_std >= 0.0
            && (1..=MAX_ATTEMPTS).contains(&v.max_attempts)
            && v.tree_attempts >= 1)
        {
            return Err(Error::Config(format!(
                "validation: max_abs > 0, max_condition > 0, a finite min_rel_std >= 0, max_attempts in [1, {MAX_ATTEMPTS}] and tree_attempts >= 1 are required"
            )));
        }
        self.excitation.validate()?;
        self.symbolic.validate()?;
        self.ode.validate()
    }

    pub fn ode_prob(&self) -> f64 {
        self.kinds.ode / (self.kinds.explicit + self.kinds.ode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GeneratorConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        GeneratorConfig::from_file(&path)
    }

    #[test]
    fn defaults_are_valid_and_empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), GeneratorConfig::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[excitation.arma]\npmax = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pmax"), "{err}");
    }

    #[test]
    fn ill_typed_keys_are_named() {
        let err = parse("length = \"long\"\n").unwrap_err().to_string();
        assert!(err.contains("length"), "{err}");
    }

    #[test]
    fn impossible_values_are_named() {
        for (text, key) in [
            ("length = 0", "length"),
            ("[excitation.mixture]\nk_max = 0", "k_max"),
            ("[dims]\ninputs = [3, 2]", "dims.inputs"),
            ("[dims]\ninputs = [1, 9]", "dims.inputs"),
            ("[kinds]\nexplicit = 0.0\node = 0.0", "kinds"),
            ("[kinds]\node = inf", "kinds"),
            ("length = 1000000000", "length"),
            ("[validation]\nmax_condition = nan", "max_condition"),
            ("[validation]\nmax_condition = 0.0", "max_condition"),
            ("[validation]\nmax_attempts = 4000000000", "max_attempts"),
            ("[symbolic.operators]\nadd = -1.0", "symbolic.operators"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
