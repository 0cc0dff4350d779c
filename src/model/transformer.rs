//! Pre-LayerNorm transformer blocks (multi-head self-attention and a GELU MLP). candle-nn's
//! fused `LayerNorm` and `softmax_last_dim` have no backward pass (a model built on them
//! silently trains a few of its parameters), so normalisation, softmax and GELU use our fused
//! ops with hand-written backward passes (`super::fused`).

use super::fused::{gelu, layer_normalize, softmax_last_dim};
use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder};
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
        if self.d_model == 0 || self.heads == 0 || self.d_ff == 0 || self.layers == 0 {
            return Err(crate::Error::Config(format!(
                "{name}: d_model, heads, d_ff and layers must be >= 1"
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
        layer_normalize(x, 1e-5)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
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
            qkv: candle_nn::linear(cfg.d_model, 3 * cfg.d_model, vb.pp("qkv"))?,
            out: candle_nn::linear(cfg.d_model, cfg.d_model, vb.pp("out"))?,
            heads: cfg.heads,
        })
    }

    /// `x`: [batch, tokens, d]; `bias`: additive attention bias broadcastable to
    /// [batch, heads, tokens, tokens] (0 for visible keys, a large negative for padding).
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, dh))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (
            qkv.get(0)?.contiguous()?,
            qkv.get(1)?.contiguous()?,
            qkv.get(2)?.contiguous()?,
        );
        let mut scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let weights = softmax_last_dim(&scores)?;
        let ctx = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.out.forward(&ctx)
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
            fc1: candle_nn::linear(cfg.d_model, cfg.d_ff, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(cfg.d_ff, cfg.d_model, vb.pp("mlp.fc2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?, bias)?)?;
        let h = self
            .fc2
            .forward(&gelu(&self.fc1.forward(&self.norm2.forward(&x)?)?)?)?;
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

    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h, bias)?;
        }
        self.norm.forward(&h)
    }
}

/// Additive attention bias from a key mask [batch, tokens] of 1 (visible) / 0 (padding).
pub fn key_padding_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    ((mask.ones_like()? - mask)? * -1e9)?.reshape((b, 1, 1, t))
}
