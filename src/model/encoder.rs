//! The one interface the transfer harness sees: a feature extractor over univariate series.
//! It sits beneath the encoders that implement it (and apart from `EncoderConfig`, which
//! names them).

use candle_core::Tensor;

pub trait Encoder {
    /// `[batch, length]` → `[batch, feature_dim]`. `train` selects batch statistics and
    /// dropout where the model has them.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    fn feature_dim(&self) -> usize;

    /// Frozen features for a linear probe, `[batch, length]` → `[batch, any width]`, read
    /// after `layer` (1-based; `None`: the last) where the encoder has layers. By default
    /// the eval-mode output.
    fn readout(&self, x: &Tensor, layer: Option<usize>) -> candle_core::Result<Tensor> {
        if let Some(layer) = layer {
            candle_core::bail!("this encoder has no layer {layer} to read out")
        }
        self.forward_t(x, false)
    }

    /// `readout` of series of any length `[batch, length]`, at their own resolution rather
    /// than resampled to the encoder's window. By default `readout` itself: right for encoders
    /// whose pooling takes any length.
    fn readout_native(&self, x: &Tensor, layer: Option<usize>) -> candle_core::Result<Tensor> {
        self.readout(x, layer)
    }
}
