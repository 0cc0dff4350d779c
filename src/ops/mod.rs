//! Ops, beneath every model: CPU kernels over slices, strided GEMM, and candle CustomOps with
//! hand-written backward passes (linear, LayerNorm, GELU, attention, distilled InfoNCE). Each
//! op falls back to the equivalent candle composition off the CPU. Like candle-nn's `ops`,
//! this floor knows nothing of models, objectives or files.

mod attention;
mod fused;
mod gemm;
mod kernels;
mod nce;
mod storage;
#[cfg(test)]
pub(crate) mod testing;

pub use attention::attention;
pub use fused::{gelu, layer_norm, linear, times_constant};
pub use nce::distilled_nce;
pub(crate) use storage::{contiguous, contiguous_mut};
