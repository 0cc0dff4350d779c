//! The fully convolutional network of Wang et al. (2017), as used for transfer by Fawaz et al.
//! (2018): three Conv1d blocks (128/256/128 filters, kernels 8/5/3, "same" padding) with batch
//! norm and ReLU, then global average pooling. Univariate: one channel in, 128 features out.

use super::layers::{BatchNorm1d, Conv1d};
use super::Encoder;
use candle_core::{Result, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FcnConfig {
    pub filters: [usize; 3],
    pub kernels: [usize; 3],
}

impl Default for FcnConfig {
    fn default() -> Self {
        FcnConfig {
            filters: [128, 256, 128],
            kernels: [8, 5, 3],
        }
    }
}

impl FcnConfig {
    pub fn validate(&self) -> crate::Result<()> {
        let within = |v: &usize, max: usize| (1..=max).contains(v);
        if !(self.filters.iter().all(|f| within(f, 4096))
            && self.kernels.iter().all(|k| within(k, 1024)))
        {
            return Err(crate::Error::Config(
                "fcn: filters must lie in [1, 4096] and kernels in [1, 1024]".into(),
            ));
        }
        Ok(())
    }
}

struct Block {
    conv: Conv1d,
    bn: BatchNorm1d,
    kernel: usize,
}

impl Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // "same" padding as in Keras: (k-1)/2 on the left, the rest on the right.
        let left = (self.kernel - 1) / 2;
        let x = x.pad_with_zeros(D::Minus1, left, self.kernel - 1 - left)?;
        self.bn.forward_t(&self.conv.forward(&x)?, train)?.relu()
    }
}

pub struct Fcn {
    blocks: Vec<Block>,
    features: usize,
}

impl Fcn {
    pub fn new(cfg: &FcnConfig, vb: VarBuilder, varmap: &VarMap) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut in_channels = 1;
        for (i, (&filters, &kernel)) in cfg.filters.iter().zip(&cfg.kernels).enumerate() {
            let conv = Conv1d::new(
                in_channels,
                filters,
                kernel,
                vb.pp(format!("conv{}", i + 1)),
            )?;
            let bn = BatchNorm1d::new(filters, vb.pp(format!("bn{}", i + 1)), varmap)?;
            blocks.push(Block { conv, bn, kernel });
            in_channels = filters;
        }
        Ok(Fcn {
            blocks,
            features: in_channels,
        })
    }
}

impl Encoder for Fcn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.unsqueeze(1)?; // [batch, 1, length]
        for block in &self.blocks {
            h = block.forward_t(&h, train)?;
        }
        h.mean(D::Minus1) // global average pooling
    }

    fn feature_dim(&self) -> usize {
        self.features
    }
}
