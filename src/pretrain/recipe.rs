//! The pretraining recipe (`recipes/pretrain-*.toml`): the model's sizes, the objective (its
//! `kind` and settings) and the training schedule. Unknown keys are errors.

use super::crosstimenet::CrossTimeNetConfig;
use super::fei::FeiConfig;
use super::symtime::SymTimeConfig;
use super::timemae::TimeMaeConfig;
use super::views::ViewsConfig;
use crate::checks::read_toml;
use crate::error::{Error, Result};
use crate::model::{SeriesConfig, SymbolConfig};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRecipe {
    /// The series encoder, which every objective trains and transfer evaluates.
    pub series: SeriesConfig,
    /// The symbol encoder (`symtime` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<SymbolConfig>,
    /// Dimension of the contrastive projections (`symtime` and `views`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proj_dim: Option<usize>,
}

/// The pretraining objective. `kind` names it; a recipe without `kind` is `symtime`, as
/// every recipe was before there were others.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind")]
pub enum ObjectiveConfig {
    /// Series-symbol: masked patches, masked symbols, momentum contrast (SymTime).
    #[serde(rename = "symtime")]
    SymTime(SymTimeConfig),
    /// Two crop-and-resize views of each series, contrasted (Mantis-style).
    #[serde(rename = "views")]
    Views(ViewsConfig),
    /// Masked codeword classification and masked representation regression (TimeMAE).
    #[serde(rename = "timemae")]
    TimeMae(TimeMaeConfig),
    /// Frequency-masked embedding inference (FEI).
    #[serde(rename = "fei")]
    Fei(FeiConfig),
    /// A VQ-VAE tokenizer, then masked token prediction (CrossTimeNet).
    #[serde(rename = "crosstimenet")]
    CrossTimeNet(CrossTimeNetConfig),
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig::SymTime(SymTimeConfig::default())
    }
}

impl ObjectiveConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectiveConfig::SymTime(_) => "symtime",
            ObjectiveConfig::Views(_) => "views",
            ObjectiveConfig::TimeMae(_) => "timemae",
            ObjectiveConfig::Fei(_) => "fei",
            ObjectiveConfig::CrossTimeNet(_) => "crosstimenet",
        }
    }

    /// The share of each window's real patches masked in the batch (0 for objectives that
    /// mask nothing there).
    pub fn patch_mask_ratio(&self) -> f64 {
        match self {
            ObjectiveConfig::SymTime(o) => o.mask_ratio,
            ObjectiveConfig::TimeMae(o) => o.mask_ratio,
            ObjectiveConfig::CrossTimeNet(o) => o.mask_ratio,
            ObjectiveConfig::Views(_) | ObjectiveConfig::Fei(_) => 0.0,
        }
    }

    /// The share of symbol tokens scored by masked-symbol modelling (0: symbols unused).
    pub fn mlm_prob(&self) -> f64 {
        match self {
            ObjectiveConfig::SymTime(o) => o.mlm_prob,
            _ => 0.0,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            ObjectiveConfig::SymTime(o) => o.validate(),
            ObjectiveConfig::Views(o) => o.validate(),
            ObjectiveConfig::TimeMae(o) => o.validate(),
            ObjectiveConfig::Fei(o) => o.validate(),
            ObjectiveConfig::CrossTimeNet(o) => o.validate(),
        }
    }
}

/// `[objectives]` with `kind = "symtime"` filled in when it is missing.
fn objectives_with_default_kind<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<ObjectiveConfig, D::Error> {
    let mut table = toml::Table::deserialize(d)?;
    table
        .entry("kind")
        .or_insert_with(|| toml::Value::String("symtime".into()));
    ObjectiveConfig::deserialize(toml::Value::Table(table)).map_err(serde::de::Error::custom)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub clip_norm: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub shuffle_buffer: usize,
    pub prefetch_batches: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainRecipe {
    pub model: ModelRecipe,
    #[serde(default, deserialize_with = "objectives_with_default_kind")]
    pub objectives: ObjectiveConfig,
    pub train: TrainConfig,
}

impl PretrainRecipe {
    pub fn from_file(path: &Path) -> Result<Self> {
        read_toml(path, PretrainRecipe::validate)
    }

    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        m.series.validate()?;
        let kind = self.objectives.kind();
        let symbols = matches!(self.objectives, ObjectiveConfig::SymTime(_));
        match &m.symbol {
            Some(symbol) if symbols => symbol.validate()?,
            None if symbols => {
                return Err(Error::Config(
                    "objectives kind symtime needs [model.symbol] (its symbol encoder)".into(),
                ))
            }
            Some(_) => {
                return Err(Error::Config(format!(
                    "model.symbol is read by objectives kind symtime only, not {kind}; remove it"
                )))
            }
            None => {}
        }
        let projects = matches!(
            self.objectives,
            ObjectiveConfig::SymTime(_) | ObjectiveConfig::Views(_)
        );
        match m.proj_dim {
            Some(p) if projects && !(1..=16_384).contains(&p) => {
                return Err(Error::Config(format!(
                    "model.proj_dim = {p} must lie in [1, 16384]"
                )))
            }
            None if projects => {
                return Err(Error::Config(format!(
                    "objectives kind {kind} needs model.proj_dim (its contrastive projection)"
                )))
            }
            Some(_) if !projects => {
                return Err(Error::Config(format!(
                    "model.proj_dim is read by objectives kinds symtime and views only, not {kind}; remove it"
                )))
            }
            _ => {}
        }
        self.objectives.validate()?;
        let t = &self.train;
        if t.batch_size < 2 || t.steps == 0 || t.checkpoint_every == 0 {
            return Err(Error::Config(
                "train.steps and train.checkpoint_every must be >= 1, train.batch_size >= 2".into(),
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(positive(t.lr)
            && non_negative(t.min_lr)
            && positive(t.clip_norm)
            && non_negative(t.weight_decay))
        {
            return Err(Error::Config("train.lr and train.clip_norm must be finite and > 0, train.min_lr and train.weight_decay finite and >= 0".into()));
        }
        // Upper limits: beyond them a typo becomes an allocation failure or a run of years.
        for (name, value, max) in [
            ("train.batch_size", t.batch_size, 1 << 16),
            ("train.steps", t.steps, 1_000_000_000),
            ("train.shuffle_buffer", t.shuffle_buffer, 10_000_000),
            ("train.prefetch_batches", t.prefetch_batches, 1024),
        ] {
            if value > max {
                return Err(Error::Config(format!(
                    "{name} = {value} is more than {max}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"
[model.series]
length = 32
patch = 8
[model.series.transformer]
d_model = 16
heads = 2
d_ff = 32
layers = 1
[train]
batch_size = 4
steps = 2
lr = 1e-3
min_lr = 0.0
weight_decay = 0.0
warmup_steps = 0
clip_norm = 1.0
seed = 0
checkpoint_every = 1
shuffle_buffer = 8
prefetch_batches = 1
"#;

    fn parse(extra: &str) -> std::result::Result<PretrainRecipe, String> {
        let recipe: PretrainRecipe =
            toml::from_str(&format!("{TINY}{extra}")).map_err(|e| e.to_string())?;
        recipe.validate().map_err(|e| e.to_string())?;
        Ok(recipe)
    }

    #[test]
    fn a_recipe_without_kind_is_symtime_and_each_kind_reads_only_its_keys() {
        let symbol = "[model.symbol]\nmax_tokens = 12\n[model.symbol.transformer]\nd_model = 16\nheads = 2\nd_ff = 32\nlayers = 1\n";
        let err = parse(&format!("[objectives]\nmask_ratio = 0.5\n{symbol}")).unwrap_err();
        assert!(err.contains("proj_dim"), "{err}");
        let with_proj = TINY.replacen("[model.series]", "[model]\nproj_dim = 8\n[model.series]", 1);
        let r: PretrainRecipe = toml::from_str(&format!(
            "{with_proj}[objectives]\nmask_ratio = 0.5\n{symbol}"
        ))
        .unwrap();
        r.validate().unwrap();
        assert_eq!(r.objectives.kind(), "symtime");
        assert_eq!(r.objectives.patch_mask_ratio(), 0.5);
        // The checkpoint's JSON copy keeps the kind and reads back equal.
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"symtime\""), "{json}");
        assert_eq!(serde_json::from_str::<PretrainRecipe>(&json).unwrap(), r);

        let timemae = parse("[objectives]\nkind = \"timemae\"\nmask_ratio = 0.6\n").unwrap();
        assert_eq!(timemae.objectives.kind(), "timemae");
        let err = parse("[objectives]\nkind = \"timemae\"\nqueue_size = 10\n").unwrap_err();
        assert!(err.contains("queue_size"), "{err}");
        let err = parse("[objectives]\nkind = \"bert\"\n").unwrap_err();
        assert!(err.contains("bert"), "{err}");
        let err = parse(&format!("[objectives]\nkind = \"fei\"\n{symbol}")).unwrap_err();
        assert!(err.contains("model.symbol"), "{err}");
    }
}
