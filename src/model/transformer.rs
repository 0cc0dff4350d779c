//! Pre-LayerNorm transformer blocks (multi-head self-attention and a GELU MLP). candle-nn's
//! fused `LayerNorm` and `softmax_last_dim` have no backward pass (a model built on them
//! silently trains a few of its parameters), so LayerNorm, attention, GELU and the bias adds
//! are our fused ops with hand-written backward passes (`ops::layer_norm`,
//! `ops::attention`, `ops::gelu`, `ops::linear`).

use super::layers::{linear, Linear};
use crate::ops::{attention, gelu, layer_norm};
use candle_core::{Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    pub d_model: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub layers: usize,
}

impl TransformerConfig {
    pub fn validate(&self, name: &str) -> crate::Result<()> {
        // The upper limits keep a mistyped size from becoming an allocation failure.
        let within = |v: usize, max: usize| (1..=max).contains(&v);
        if !(within(self.d_model, 16_384)
            && within(self.heads, 256)
            && within(self.d_ff, 65_536)
            && within(self.layers, 256))
        {
            return Err(crate::Error::Config(format!(
                "{name}: d_model (1..=16384), heads (1..=256), d_ff (1..=65536) and layers (1..=256) are out of range"
            )));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(crate::Error::Config(format!(
                "{name}: d_model {} is not divisible by heads {}",
                self.d_model, self.heads
            )));
        }
        Ok(())
    }
}

/// LayerNorm over the last dimension.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, 1e-5)
    }
}

pub struct Attention {
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Attention {
            qkv: linear(cfg.d_model, 3 * cfg.d_model, vb.pp("qkv"))?,
            out: linear(cfg.d_model, cfg.d_model, vb.pp("out"))?,
            heads: cfg.heads,
        })
    }

    /// `x`: [batch, tokens, d]; `key_bias`: additive attention bias [batch, tokens] (0 for
    /// visible keys, a large negative for padding).
    pub fn forward(&self, x: &Tensor, key_bias: &Tensor) -> Result<Tensor> {
        let merged = attention(&self.qkv.forward(x)?, key_bias, self.heads)?;
        self.out.forward(&merged)
    }
}

pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            norm1: LayerNorm::new(cfg.d_model, vb.pp("norm1"))?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            norm2: LayerNorm::new(cfg.d_model, vb.pp("norm2"))?,
            fc1: linear(cfg.d_model, cfg.d_ff, vb.pp("mlp.fc1"))?,
            fc2: linear(cfg.d_ff, cfg.d_model, vb.pp("mlp.fc2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, key_bias: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?, key_bias)?)?;
        let h = self
            .fc2
            .forward(&gelu(&self.fc1.forward(&self.norm2.forward(&x)?)?)?)?;
        x + h
    }
}

/// A decoder block without self-attention: pre-LN cross-attention from queries onto a
/// context, then the MLP. The fused attention is self-attention only, so it runs over the
/// context and the queries joined, with every query masked out as a key: each query then
/// attends to the context alone, and the context rows' outputs are dropped.
pub struct CrossBlock {
    norm_context: LayerNorm,
    block: Block,
}

impl CrossBlock {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        Ok(CrossBlock {
            norm_context: LayerNorm::new(cfg.d_model, vb.pp("norm_context"))?,
            block: Block::new(cfg, vb)?,
        })
    }

    /// `queries` [batch, Q, d] attend to `context` [batch, C, d] where `context_mask`
    /// [batch, C] is 1; returns the updated queries.
    pub fn forward(
        &self,
        queries: &Tensor,
        context: &Tensor,
        context_mask: &Tensor,
    ) -> Result<Tensor> {
        let b = &self.block;
        let (c, q) = (context.dim(1)?, queries.dim(1)?);
        let joined = Tensor::cat(
            &[
                &self.norm_context.forward(context)?,
                &b.norm1.forward(queries)?,
            ],
            1,
        )?;
        let keys = Tensor::cat(
            &[
                context_mask,
                &Tensor::zeros((queries.dim(0)?, q), queries.dtype(), queries.device())?,
            ],
            1,
        )?;
        let attended = b
            .attn
            .forward(&joined, &key_padding_bias(&keys)?)?
            .narrow(1, c, q)?;
        let x = (queries + attended)?;
        let h = b
            .fc2
            .forward(&gelu(&b.fc1.forward(&b.norm2.forward(&x)?)?)?)?;
        x + h
    }
}

/// A stack of blocks with a final LayerNorm.
pub struct Transformer {
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl Transformer {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.layers)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        Ok(Transformer {
            blocks,
            norm: LayerNorm::new(cfg.d_model, vb.pp("norm"))?,
        })
    }

    /// `x` [batch, tokens, d]; `key_mask` [batch, tokens], 1 for tokens, 0 for padding (or
    /// `None`: no padding).
    pub fn forward(&self, x: &Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_through(x, key_mask, self.blocks.len())
    }

    /// The states after the first `layers` blocks; after all of them, with the final
    /// LayerNorm (as `forward`), otherwise the raw residual stream.
    pub fn forward_through(
        &self,
        x: &Tensor,
        key_mask: Option<&Tensor>,
        layers: usize,
    ) -> Result<Tensor> {
        let key_bias = match key_mask {
            Some(mask) => key_padding_bias(mask)?,
            None => Tensor::zeros(x.dims()[..2].to_vec(), x.dtype(), x.device())?,
        };
        let mut h = x.clone();
        for block in self.blocks.iter().take(layers) {
            h = block.forward(&h, &key_bias)?;
        }
        if layers >= self.blocks.len() {
            self.norm.forward(&h)
        } else {
            Ok(h)
        }
    }
}

/// Additive attention bias from a key mask [batch, tokens] of 1 (visible) / 0 (padding).
fn key_padding_bias(mask: &Tensor) -> Result<Tensor> {
    (mask.ones_like()? - mask)? * -1e9
}
