//! The two towers of the series-symbol model: the series encoder and the symbol encoder,
//! each with its contrastive projection. The online model and its momentum copy are both
//! a `Towers`, with the same weight names under different prefixes.

use super::recipe::ModelRecipe;
use crate::model::{linear, Linear, SeriesEncoder, SymbolEncoder};
use candle_core::{IndexOp, Result, Tensor, D};
use candle_nn::{Module, VarBuilder};

pub struct Towers {
    pub series: SeriesEncoder,
    pub symbol: SymbolEncoder,
    series_proj: Linear,
    symbol_proj: Linear,
}

impl Towers {
    pub fn new(cfg: &ModelRecipe, vb: &VarBuilder) -> Result<Towers> {
        let (Some(symbol), Some(proj_dim)) = (&cfg.symbol, cfg.proj_dim) else {
            candle_core::bail!("the series-symbol towers need model.symbol and model.proj_dim")
        };
        Ok(Towers {
            series: SeriesEncoder::new(&cfg.series, vb.pp("series"))?,
            symbol: SymbolEncoder::new(symbol, vb.pp("symbol"))?,
            series_proj: linear(
                cfg.series.transformer.d_model,
                proj_dim,
                vb.pp("series_proj"),
            )?,
            symbol_proj: linear(symbol.transformer.d_model, proj_dim, vb.pp("symbol_proj"))?,
        })
    }

    /// L2-normalised projections of the [CLS] states of the clean views.
    pub fn features(
        &self,
        patches: &Tensor,
        valid: &Tensor,
        tokens: &Tensor,
        token_valid: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let s = self.series.encode_patches(patches, Some(valid))?;
        let y = self.symbol.forward(tokens, token_valid)?;
        self.project(&s, &y)
    }

    /// L2-normalised projections of the [CLS] states (position 0) of series and symbol states.
    pub fn project(
        &self,
        series_states: &Tensor,
        symbol_states: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        Ok((
            l2_normalize(&self.series_proj.forward(&series_states.i((.., 0))?)?)?,
            l2_normalize(&self.symbol_proj.forward(&symbol_states.i((.., 0))?)?)?,
        ))
    }
}

pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + 1e-12)?)
}
