//! Models. Every encoder maps a batch of univariate series to feature vectors through one
//! trait, so the transfer harness treats the FCN and the pretrained patch transformer alike.

mod fcn;
pub mod fused;
mod fused_attention;
mod gemm;
pub(crate) mod kernels;
pub mod layers;
mod series;
mod symbol;
pub mod transformer;

pub use fcn::{Fcn, FcnConfig};
pub use series::{instance_norm, SeriesConfig, SeriesEncoder};
pub use symbol::{SymbolConfig, SymbolEncoder};

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A feature extractor over univariate series.
pub trait Encoder {
    /// `[batch, length]` → `[batch, feature_dim]`. `train` selects batch statistics and
    /// dropout where the model has them.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    fn feature_dim(&self) -> usize;
}

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
            EncoderConfig::Fcn(cfg) => Box::new(Fcn::new(cfg, vb, varmap).map_err(candle_err)?),
            EncoderConfig::PatchTransformer(cfg) => {
                Box::new(SeriesEncoder::new(cfg, vb).map_err(candle_err)?)
            }
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

    /// The config of a saved encoder directory.
    pub fn load(dir: &Path) -> Result<EncoderConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Usage(format!("{}: not a saved encoder ({e}); pass `fcn` or a directory written by --save-encoder or `s2kit pretrain`", dir.display()))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::corpus(&path, format!("invalid encoder config: {e}")))
    }
}

/// Test helper: every variable has a gradient, and none is all zeros (a missing backward
/// pass in candle shows up exactly like that).
#[cfg(test)]
pub(crate) fn assert_every_gradient_nonzero(
    grads: &candle_core::backprop::GradStore,
    vars: &[(String, candle_core::Var)],
) {
    for (name, var) in vars {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{name} has a zero gradient");
    }
}

pub fn candle_err(e: candle_core::Error) -> Error {
    Error::Other(format!("tensor error: {e}"))
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
    let tensors: std::collections::HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("var map lock")
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{prefix}.")))
        .map(|(name, var)| {
            (
                format!("{ENCODER_PREFIX}{}", &name[prefix.len()..]),
                var.as_tensor().clone(),
            )
        })
        .collect();
    let weights = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights)
        .map_err(|e| Error::Other(format!("{}: {e}", weights.display())))?;
    let text = serde_json::to_string_pretty(cfg).expect("config serialises");
    std::fs::write(dir.join(CONFIG_FILE), text).map_err(|e| Error::io(dir.join(CONFIG_FILE), e))
}

/// Overwrites the `encoder.*` variables of `varmap` with the weights saved in `dir`; every
/// saved tensor must match a variable in name and shape.
pub fn load_encoder_weights(dir: &Path, varmap: &VarMap, device: &Device) -> Result<()> {
    let path = dir.join(WEIGHTS_FILE);
    let saved = candle_core::safetensors::load(&path, device)
        .map_err(|e| Error::corpus(&path, format!("cannot read weights: {e}")))?;
    let data = varmap.data().lock().expect("var map lock");
    for (name, var) in data.iter().filter(|(n, _)| n.starts_with(ENCODER_PREFIX)) {
        let tensor = saved
            .get(name)
            .ok_or_else(|| Error::corpus(&path, format!("missing weight '{name}'")))?;
        var.set(tensor)
            .map_err(|e| Error::corpus(&path, format!("weight '{name}': {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::layers::trainable_vars;
    use super::*;

    #[test]
    fn fcn_shapes_and_every_variable_gets_a_gradient() {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let encoder = EncoderConfig::Fcn(FcnConfig::default())
            .build(&varmap, &device)
            .unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 37), &device).unwrap();
        let f = encoder.forward_t(&x, true).unwrap();
        assert_eq!(f.dims(), &[4, 128]);
        let loss = f.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let vars = trainable_vars(&varmap, ENCODER_PREFIX);
        assert_eq!(
            vars.len(),
            12,
            "3 × (conv weight, conv bias, bn weight, bn bias)"
        );
        let named: Vec<(String, candle_core::Var)> = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("variable {i}"), v))
            .collect();
        assert_every_gradient_nonzero(&grads, &named);
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
        let x = (Tensor::randn(0f32, 1.0, (8, 20), &device).unwrap() * 3.0).unwrap();
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
        assert_eq!(super::fused::tests::max_diff(&before, &after), 0.0);
    }
}
