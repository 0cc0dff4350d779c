//! The symbol encoder: token and learned position embeddings and pre-LN transformer blocks
//! over tokenized expressions; the [CLS] state (position 0) is the symbol's feature. Trained
//! from scratch with its own vocabulary (`symbolic::tokens`).

use super::transformer::{Transformer, TransformerConfig};
use crate::symbolic::tokens::vocab_size;
use candle_core::{Result, Tensor};
use candle_nn::{Embedding, Init, Module, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymbolConfig {
    /// Longest token sequence, [CLS] and [SEP] included; longer symbols are cut.
    pub max_tokens: usize,
    pub transformer: TransformerConfig,
}

impl SymbolConfig {
    pub fn validate(&self) -> crate::Result<()> {
        if !(4..=4096).contains(&self.max_tokens) {
            return Err(crate::Error::Config(
                "model.symbol.max_tokens must lie in [4, 4096]".into(),
            ));
        }
        self.transformer.validate("model.symbol.transformer")
    }
}

pub struct SymbolEncoder {
    embed: Embedding,
    positions: Tensor,
    transformer: Transformer,
}

impl SymbolEncoder {
    pub fn new(cfg: &SymbolConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.transformer.d_model;
        let table = vb.get_with_hints(
            (vocab_size(), d),
            "token_embed.weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        Ok(SymbolEncoder {
            embed: Embedding::new(table, d),
            positions: vb.get_with_hints(
                (cfg.max_tokens, d),
                "pos_embed",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            transformer: Transformer::new(&cfg.transformer, vb.pp("transformer"))?,
        })
    }

    /// `ids` [batch, T] u32 and `mask` [batch, T] f32 (1 = token, 0 = padding) → [batch, T, d].
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let x = self
            .embed
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, t)?.unsqueeze(0)?)?;
        self.transformer.forward(&x, Some(mask))
    }
}
