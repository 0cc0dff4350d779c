//! Models. Every encoder maps a batch of univariate series to feature vectors through one
//! trait, so the transfer harness treats the FCN and the pretrained patch transformer alike.
//! Each model follows candle-transformers: a config, `new(cfg, vb)`, `forward`, and weight
//! names that read like paths (`series.blocks.0.attn.qkv.weight`).

mod encoder;
mod fcn;
mod layers;
pub(crate) mod params;
mod saved;
mod series;
mod symbol;
mod transformer;

pub use encoder::Encoder;
pub use fcn::{Fcn, FcnConfig};
pub use layers::{linear, linear_no_bias, BatchNorm1d, Conv1d, Linear};
pub use saved::{
    encoder_digest, export_encoder, load_encoder_weights, save_encoder, EncoderConfig,
    ENCODER_PREFIX,
};
pub use series::{instance_norm, SeriesConfig, SeriesEncoder};
pub use symbol::{SymbolConfig, SymbolEncoder};
pub use transformer::{CrossBlock, LayerNorm, TransformerConfig};
