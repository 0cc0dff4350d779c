//! Saved encoders: `encoder.json` (which architecture, with its hyperparameters) beside
//! `encoder.safetensors` (its weights, buffers included). Written by `s2kit pretrain` and
//! `transfer --save-encoder`, read by `s2kit transfer --model DIR`.

use super::params;
use super::{Encoder, Fcn, FcnConfig, SeriesConfig, SeriesEncoder};
use crate::digest::{sha256_bytes, sha256_file};
use crate::error::{Action, Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Which encoder, with its hyperparameters; stored as `encoder.json` beside its weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum EncoderConfig {
    Fcn(FcnConfig),
    /// The series encoder of a pretrained SymTime model.
    PatchTransformer(SeriesConfig),
}

pub const ENCODER_PREFIX: &str = "encoder";
const CONFIG_FILE: &str = "encoder.json";
const WEIGHTS_FILE: &str = "encoder.safetensors";

impl EncoderConfig {
    /// Builds the encoder with its variables under `encoder.` in `varmap`.
    pub fn build(&self, varmap: &VarMap, device: &Device) -> Result<Box<dyn Encoder>> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device).pp(ENCODER_PREFIX);
        let encoder: Box<dyn Encoder> = match self {
            EncoderConfig::Fcn(cfg) => Box::new(Fcn::new(cfg, vb, varmap)?),
            EncoderConfig::PatchTransformer(cfg) => Box::new(SeriesEncoder::new(cfg, vb)?),
        };
        Ok(encoder)
    }

    /// The window length the encoder needs, if it has a fixed one.
    pub fn input_length(&self) -> Option<usize> {
        match self {
            EncoderConfig::Fcn(_) => None,
            EncoderConfig::PatchTransformer(cfg) => Some(cfg.length),
        }
    }

    /// The number of layers a linear probe can read from, if the encoder has layers.
    pub fn layers(&self) -> Option<usize> {
        match self {
            EncoderConfig::Fcn(_) => None,
            EncoderConfig::PatchTransformer(cfg) => Some(cfg.transformer.layers),
        }
    }

    /// The config of a saved encoder directory.
    pub fn load(dir: &Path) -> Result<EncoderConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Request(format!("{}: not a saved encoder ({e}); pass `fcn` or a directory written by --save-encoder or `s2kit pretrain`", dir.display()))
        })?;
        let cfg: EncoderConfig =
            serde_json::from_str(&text).map_err(Error::json(Action::Loading, &path))?;
        let valid = match &cfg {
            EncoderConfig::Fcn(c) => c.validate(),
            EncoderConfig::PatchTransformer(c) => c.validate(),
        };
        valid.map_err(|e| Error::ConfigFile {
            path,
            message: e.to_string(),
        })?;
        Ok(cfg)
    }
}

/// A digest of a saved encoder's files (config and weights): what a cached result computed
/// from it is keyed by.
pub fn encoder_digest(dir: &Path) -> Result<String> {
    let parts = [CONFIG_FILE, WEIGHTS_FILE]
        .iter()
        .map(|f| sha256_file(&dir.join(f)))
        .collect::<Result<Vec<_>>>()?;
    Ok(sha256_bytes(parts.join(" ").as_bytes()))
}

/// Saves the `encoder.*` variables of `varmap` (buffers included) and `cfg` into `dir`.
pub fn save_encoder(dir: &Path, cfg: &EncoderConfig, varmap: &VarMap) -> Result<()> {
    export_encoder(dir, cfg, varmap, ENCODER_PREFIX)
}

/// Saves the variables under `prefix` in `varmap`, renamed under `encoder.`, as a saved
/// encoder directory (a pretrained model keeps its series encoder under `series.`).
pub fn export_encoder(
    dir: &Path,
    cfg: &EncoderConfig,
    varmap: &VarMap,
    prefix: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors: HashMap<String, Tensor> = params::named(varmap, &format!("{prefix}."))
        .into_iter()
        .map(|(name, var)| {
            (
                format!("{ENCODER_PREFIX}{}", &name[prefix.len()..]),
                var.as_tensor().clone(),
            )
        })
        .collect();
    let weights = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights)
        .map_err(Error::weights(Action::Saving, &weights))?;
    let path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(cfg).map_err(Error::json(Action::Saving, &path))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}

/// Overwrites the `encoder.*` variables of `varmap` with the weights saved in `dir`; every
/// saved tensor must match a variable in name and shape.
pub fn load_encoder_weights(dir: &Path, varmap: &VarMap, device: &Device) -> Result<()> {
    let path = dir.join(WEIGHTS_FILE);
    let saved = candle_core::safetensors::load(&path, device)
        .map_err(Error::weights(Action::Loading, &path))?;
    params::restore(varmap, &saved, ENCODER_PREFIX).map_err(Error::weights(Action::Loading, &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_diff};

    #[test]
    fn fcn_shapes_and_every_variable_gets_a_gradient() {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let encoder = EncoderConfig::Fcn(FcnConfig::default())
            .build(&varmap, &device)
            .unwrap();
        let x = crate::ops::testing::randn(&[4, 37], 1.0);
        let f = encoder.forward_t(&x, true).unwrap();
        assert_eq!(f.dims(), &[4, 128]);
        let loss = f.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let vars = params::trainable(&varmap, ENCODER_PREFIX);
        assert_eq!(
            vars.len(),
            12,
            "3 × (conv weight, conv bias, bn weight, bn bias)"
        );
        assert_every_gradient_nonzero(&grads, &vars);
    }

    #[test]
    fn saved_encoders_reload_with_their_batch_statistics() {
        let device = Device::Cpu;
        let dir = tempfile::tempdir().unwrap();
        let cfg = EncoderConfig::Fcn(FcnConfig {
            filters: [4, 8, 4],
            kernels: [3, 3, 3],
        });
        let varmap = VarMap::new();
        let encoder = cfg.build(&varmap, &device).unwrap();
        let x = crate::ops::testing::randn(&[8, 20], 3.0);
        encoder.forward_t(&x, true).unwrap(); // moves the running statistics
        let before = encoder.forward_t(&x, false).unwrap();
        save_encoder(dir.path(), &cfg, &varmap).unwrap();

        let loaded_map = VarMap::new();
        let loaded = EncoderConfig::load(dir.path())
            .unwrap()
            .build(&loaded_map, &device)
            .unwrap();
        load_encoder_weights(dir.path(), &loaded_map, &device).unwrap();
        let after = loaded.forward_t(&x, false).unwrap();
        assert_eq!(max_diff(&before, &after), 0.0);
    }
}
