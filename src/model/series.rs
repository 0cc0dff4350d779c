//! The series encoder: an instance-normalised window of length L cut into non-overlapping
//! patches of length P, each mapped to d by a linear layer; a learned [CLS] token and learned
//! positions; pre-LN transformer blocks. Masked patches are replaced by a learned mask
//! embedding (masked-patch modelling).

use super::layers::{linear, Linear};
use super::transformer::{Transformer, TransformerConfig};
use super::Encoder;
use candle_core::{Result, Tensor, D};
use candle_nn::{Init, Module, VarBuilder};
use serde::{Deserialize, Serialize};

/// The longest window, and the most patches (attention is quadratic in them).
const MAX_WINDOW: usize = 1 << 16;
const MAX_PATCHES: usize = 4096;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeriesConfig {
    /// Window length L.
    pub length: usize,
    /// Patch length P (L must be a multiple of P).
    pub patch: usize,
    pub transformer: TransformerConfig,
}

impl SeriesConfig {
    pub fn patches(&self) -> usize {
        self.length / self.patch
    }

    pub fn validate(&self) -> crate::Result<()> {
        if self.patch == 0 || self.length == 0 || !self.length.is_multiple_of(self.patch) {
            return Err(crate::Error::Config(format!(
                "model.series: length {} must be a positive multiple of patch {}",
                self.length, self.patch
            )));
        }
        if self.length > MAX_WINDOW || self.patches() > MAX_PATCHES {
            return Err(crate::Error::Config(format!(
                "model.series: length {} (at most {MAX_WINDOW}) in {} patches (at most {MAX_PATCHES}) is too long",
                self.length,
                self.patches()
            )));
        }
        self.transformer.validate("model.series.transformer")
    }
}

pub struct SeriesEncoder {
    cfg: SeriesConfig,
    patch_embed: Linear,
    cls: Tensor,
    mask_embed: Tensor,
    positions: Tensor,
    transformer: Transformer,
}

/// Per-series normalisation over the last dimension, (x − mean) / (std + 1e-5).
pub fn instance_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let std = centered.sqr()?.mean_keepdim(D::Minus1)?.sqrt()?;
    centered.broadcast_div(&(std + 1e-5)?)
}

impl SeriesEncoder {
    pub fn new(cfg: &SeriesConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.transformer.d_model;
        Ok(SeriesEncoder {
            patch_embed: linear(cfg.patch, d, vb.pp("patch_embed"))?,
            cls: vb.get_with_hints(d, "cls_token", Init::Const(0.0))?,
            mask_embed: vb.get_with_hints(
                d,
                "mask_token",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            positions: vb.get_with_hints(
                (cfg.patches() + 1, d),
                "pos_embed",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            transformer: Transformer::new(&cfg.transformer, vb.pp("transformer"))?,
            cfg: cfg.clone(),
        })
    }

    /// [batch, L] (already instance-normalised) → patches [batch, N, P].
    pub fn patchify(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        x.reshape((b, self.cfg.patches(), self.cfg.patch))
    }

    /// Patches [batch, N, P] → token states [batch, N+1, d] ([CLS] first); `valid`
    /// [batch, N] (1 = real data, 0 = padding).
    pub fn encode_patches(&self, patches: &Tensor, valid: Option<&Tensor>) -> Result<Tensor> {
        self.encode_tokens(&self.patch_embed.forward(patches)?, valid)
    }

    /// The masked view (masked-patch modelling) and the clean view (contrastive features) of
    /// the same patches, in one pass over the stacked batch: one graph node per layer instead
    /// of two, and products twice as tall. `mask` [batch, N] is 1 where a patch is replaced by
    /// the mask embedding. Returns (masked, clean) states [batch, N+1, d].
    pub fn encode_views(
        &self,
        patches: &Tensor,
        mask: &Tensor,
        valid: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let b = patches.dim(0)?;
        let clean = self.patch_embed.forward(patches)?;
        let both = Tensor::cat(&[&self.apply_mask(&clean, mask)?, &clean], 0)?;
        let states = self.encode_tokens(&both, Some(&Tensor::cat(&[valid, valid], 0)?))?;
        Ok((states.narrow(0, 0, b)?, states.narrow(0, b, b)?))
    }

    /// The states of the patches with those where `mask` [batch, N] is 1 replaced by the
    /// mask embedding: [batch, N+1, d].
    pub fn encode_masked(&self, patches: &Tensor, mask: &Tensor, valid: &Tensor) -> Result<Tensor> {
        let tokens = self.apply_mask(&self.patch_embed.forward(patches)?, mask)?;
        self.encode_tokens(&tokens, Some(valid))
    }

    /// The mask embedding at every patch position, [batch, N, d]: the queries of a decoder
    /// that predicts masked patches from the visible ones (TimeMAE's masked branch).
    pub fn mask_queries(&self, batch: usize) -> Result<Tensor> {
        let (n, d) = (self.cfg.patches(), self.cfg.transformer.d_model);
        let queries = self
            .positions
            .narrow(0, 1, n)?
            .broadcast_add(&self.mask_embed.reshape((1, d))?)?;
        queries
            .unsqueeze(0)?
            .broadcast_as((batch, n, d))?
            .contiguous()
    }

    /// Replaces the tokens where `mask` [batch, N] is 1 by the mask embedding.
    fn apply_mask(&self, tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, n, d) = tokens.dims3()?;
        let m = mask.unsqueeze(D::Minus1)?; // [b, n, 1]
        let replacement = self
            .mask_embed
            .reshape((1, 1, d))?
            .broadcast_as((b, n, d))?;
        tokens.broadcast_mul(&(m.ones_like()? - &m)?)? + replacement.broadcast_mul(&m)?
    }

    /// Patch tokens [batch, N, d] → states [batch, N+1, d]: [CLS], positions, transformer.
    fn encode_tokens(&self, tokens: &Tensor, valid: Option<&Tensor>) -> Result<Tensor> {
        self.encode_tokens_through(tokens, valid, self.cfg.transformer.layers)
    }

    /// As `encode_tokens`, with the states after the first `layers` blocks.
    fn encode_tokens_through(
        &self,
        tokens: &Tensor,
        valid: Option<&Tensor>,
        layers: usize,
    ) -> Result<Tensor> {
        let (b, _, d) = tokens.dims3()?;
        let cls = self.cls.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let tokens =
            Tensor::cat(&[&cls, tokens], 1)?.broadcast_add(&self.positions.unsqueeze(0)?)?;
        let key_mask = match valid {
            Some(v) => Some(Tensor::cat(&[&v.narrow(1, 0, 1)?.ones_like()?, v], 1)?),
            None => None,
        };
        self.transformer
            .forward_through(&tokens, key_mask.as_ref(), layers)
    }
}

impl Encoder for SeriesEncoder {
    /// The [CLS] state of the unmasked window.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let patches = self.patchify(&instance_norm(x)?)?;
        self.encode_patches(&patches, None)?
            .narrow(1, 0, 1)?
            .squeeze(1)
    }

    fn feature_dim(&self) -> usize {
        self.cfg.transformer.d_model
    }

    /// [CLS] concatenated with the mean of the patch states (Mantis's "combined" readout),
    /// after block `layer` (1-based; `None` is the last, with the final LayerNorm).
    fn readout(&self, x: &Tensor, layer: Option<usize>) -> Result<Tensor> {
        let layers = self.cfg.transformer.layers;
        let layer = layer.unwrap_or(layers);
        if !(1..=layers).contains(&layer) {
            candle_core::bail!("layer {layer} does not exist: the encoder has layers 1 to {layers}")
        }
        let patches = self.patchify(&instance_norm(x)?)?;
        let states =
            self.encode_tokens_through(&self.patch_embed.forward(&patches)?, None, layer)?;
        let cls = states.narrow(1, 0, 1)?.squeeze(1)?;
        let patch_mean = states.narrow(1, 1, self.cfg.patches())?.mean(1)?;
        Tensor::cat(&[&cls, &patch_mean], 1)
    }
}
