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

    /// Patch tokens [batch, n ≤ N, d] → states [batch, n+1, d]: [CLS], positions, transformer.
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
        let (b, n, d) = tokens.dims3()?;
        let cls = self.cls.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        // Fewer patches than the window's (a short series at its own resolution) take the
        // first positions.
        let positions = self.positions.narrow(0, 0, n + 1)?;
        let tokens = Tensor::cat(&[&cls, tokens], 1)?.broadcast_add(&positions.unsqueeze(0)?)?;
        let key_mask = match valid {
            Some(v) => Some(Tensor::cat(&[&v.narrow(1, 0, 1)?.ones_like()?, v], 1)?),
            None => None,
        };
        self.transformer
            .forward_through(&tokens, key_mask.as_ref(), layers)
    }

    /// The readout of patches [batch, n ≤ N, P]: [CLS] and the mean of the n patch states.
    fn pooled(&self, patches: &Tensor, layer: Option<usize>) -> Result<Tensor> {
        let layers = self.cfg.transformer.layers;
        let layer = layer.unwrap_or(layers);
        if !(1..=layers).contains(&layer) {
            candle_core::bail!("layer {layer} does not exist: the encoder has layers 1 to {layers}")
        }
        let n = patches.dim(1)?;
        let states =
            self.encode_tokens_through(&self.patch_embed.forward(patches)?, None, layer)?;
        let cls = states.narrow(1, 0, 1)?.squeeze(1)?;
        let patch_mean = states.narrow(1, 1, n)?.mean(1)?;
        Tensor::cat(&[&cls, &patch_mean], 1)
    }
}

impl Encoder for SeriesEncoder {
    /// The readout at the last layer, so that a fine-tuned head reads what the linear probe
    /// reads by default (and LP-FT starts from a probe on the same features).
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        self.readout(x, None)
    }

    fn feature_dim(&self) -> usize {
        2 * self.cfg.transformer.d_model
    }

    /// [CLS] concatenated with the mean of the patch states (Mantis's "combined" readout),
    /// after block `layer` (1-based; `None` is the last, with the final LayerNorm).
    fn readout(&self, x: &Tensor, layer: Option<usize>) -> Result<Tensor> {
        self.pooled(&self.patchify(&instance_norm(x)?)?, layer)
    }

    /// A series no longer than the window fills only its own patches (the last one completed
    /// with its last value), at the first positions; a longer one is read window by window
    /// (non-overlapping, the last aligned with the end), each instance-normalised as in
    /// pretraining, and the windows' readouts are averaged.
    fn readout_native(&self, x: &Tensor, layer: Option<usize>) -> Result<Tensor> {
        let (b, len) = x.dims2()?;
        let (window, p) = (self.cfg.length, self.cfg.patch);
        if len <= window {
            let n = len.div_ceil(p);
            let x = instance_norm(x)?;
            let x = if n * p > len {
                let last = x.narrow(1, len - 1, 1)?.broadcast_as((b, n * p - len))?;
                Tensor::cat(&[&x, &last.contiguous()?], 1)?
            } else {
                x
            };
            return self.pooled(&x.reshape((b, n, p))?, layer);
        }
        let mut starts: Vec<usize> = (0..=len - window).step_by(window).collect();
        if starts.last() != Some(&(len - window)) {
            starts.push(len - window);
        }
        let windows = starts
            .iter()
            .map(|&s| self.readout(&x.narrow(1, s, window)?.contiguous()?, layer))
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&windows, 0)?.mean(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::max_diff;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// A two-layer encoder over windows of 32 in patches of 8.
    fn encoder(varmap: &VarMap) -> SeriesEncoder {
        let cfg = SeriesConfig {
            length: 32,
            patch: 8,
            transformer: TransformerConfig {
                d_model: 16,
                heads: 2,
                d_ff: 32,
                layers: 2,
            },
        };
        SeriesEncoder::new(
            &cfg,
            VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu),
        )
        .unwrap()
    }

    fn series(len: usize) -> Tensor {
        crate::ops::testing::randn(&[3, len], 1.0)
    }

    #[test]
    fn native_readout_of_a_full_window_is_the_readout() {
        let enc = encoder(&VarMap::new());
        let x = series(32);
        for layer in [Some(1), None] {
            let native = enc.readout_native(&x, layer).unwrap();
            assert_eq!(max_diff(&native, &enc.readout(&x, layer).unwrap()), 0.0);
        }
    }

    #[test]
    fn short_series_fill_only_their_own_patches() {
        let enc = encoder(&VarMap::new());
        // 24 points: three whole patches at the first three positions.
        let x = series(24);
        let expected = enc
            .pooled(
                &instance_norm(&x).unwrap().reshape((3, 3, 8)).unwrap(),
                None,
            )
            .unwrap();
        assert_eq!(
            max_diff(&enc.readout_native(&x, None).unwrap(), &expected),
            0.0
        );
        // 20 points: the third patch completed with the series' last value.
        let x = series(20);
        let z = instance_norm(&x).unwrap();
        let last = z.narrow(1, 19, 1).unwrap().repeat((1, 4)).unwrap();
        let padded = Tensor::cat(&[&z, &last], 1).unwrap();
        let expected = enc
            .pooled(&padded.reshape((3, 3, 8)).unwrap(), None)
            .unwrap();
        let native = enc.readout_native(&x, None).unwrap();
        assert_eq!(native.dims(), &[3, 32]);
        assert_eq!(max_diff(&native, &expected), 0.0);
        // Not the resampled readout in disguise.
        let stretched = enc
            .readout(&padded.pad_with_same(1, 0, 8).unwrap(), None)
            .unwrap();
        assert!(max_diff(&native, &stretched) > 1e-3);
    }

    #[test]
    fn long_series_average_their_windows() {
        let enc = encoder(&VarMap::new());
        // 80 points: windows at 0 and 32, and the last one aligned with the end at 48.
        let x = series(80);
        let windows: Vec<Tensor> = [0, 32, 48]
            .iter()
            .map(|&s| {
                enc.readout(&x.narrow(1, s, 32).unwrap().contiguous().unwrap(), Some(1))
                    .unwrap()
            })
            .collect();
        let expected = Tensor::stack(&windows, 0).unwrap().mean(0).unwrap();
        let native = enc.readout_native(&x, Some(1)).unwrap();
        assert!(max_diff(&native, &expected) < 1e-6);
        // An exact multiple of the window has no overlapping last window.
        let x = series(64);
        let halves: Vec<Tensor> = [0, 32]
            .iter()
            .map(|&s| {
                enc.readout(&x.narrow(1, s, 32).unwrap().contiguous().unwrap(), None)
                    .unwrap()
            })
            .collect();
        let expected = ((&halves[0] + &halves[1]).unwrap() / 2.0).unwrap();
        assert!(max_diff(&enc.readout_native(&x, None).unwrap(), &expected) < 1e-6);
    }
}
