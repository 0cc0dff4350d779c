//! Multi-head scaled dot-product attention as one op with a hand-written backward pass.
//!
//! Built from candle ops, attention is about ten graph nodes per layer (head split and three
//! copies, QKᵀ, scale, mask, softmax, PV, head merge), each with its temporaries forward and
//! its zero-filled gradient buffer backward. Here the op reads the packed output of the QKV
//! projection, [batch, tokens, 3·d], in place through strided GEMMs, and writes the merged
//! heads, [batch, tokens, d]. The backward pass recomputes the attention probabilities
//! instead of storing them (as FlashAttention does), so the forward keeps no [t, t] buffers.
//! Batch elements run in parallel on rayon's pool. On other devices, the candle composition.

use super::gemm::{gemm, View};
use super::kernels::softmax_rows;
use super::storage::contiguous as data;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The geometry of one call: `tokens` rows of the packed [q | k | v] layout per batch element.
#[derive(Clone, Copy)]
struct Heads {
    heads: usize,
    tokens: usize,
    d_model: usize,
}

impl Heads {
    /// The geometry of packed `qkv` [b, t, 3·d], checked against the key bias [b, t].
    fn new(name: &str, heads: usize, qkv: &Layout, bias: &Layout) -> Result<Heads> {
        let (b, tokens, width) = qkv.shape().dims3()?;
        if width % 3 != 0 || bias.dims() != [b, tokens] {
            candle_core::bail!(
                "{name}: expected qkv [b, t, {}] and a key bias [b, t], got {:?} and {:?}",
                3 * (width / 3),
                qkv.dims(),
                bias.dims()
            )
        }
        Ok(Heads {
            heads,
            tokens,
            d_model: width / 3,
        })
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }

    /// Query, key and value of head `h` inside one batch element's [tokens, 3·d] block.
    fn qkv(&self, h: usize) -> [View; 3] {
        let (t, d, dh) = (self.tokens, self.d_model, self.head_dim());
        [0, 1, 2].map(|part| View::row_major(part * d + h * dh, t, dh, 3 * d))
    }

    /// Head `h` inside one batch element's [tokens, d] block.
    fn merged(&self, h: usize) -> View {
        View::row_major(
            h * self.head_dim(),
            self.tokens,
            self.head_dim(),
            self.d_model,
        )
    }

    fn square(&self) -> View {
        View::row_major(0, self.tokens, self.tokens, self.tokens)
    }

    /// P = softmax(q·kᵀ/√dh + key bias) for head `h` of one batch element, into `p`.
    fn probabilities(&self, p: &mut [f32], qkv: &[f32], key_bias: &[f32], h: usize) {
        let [q, k, _] = self.qkv(h);
        let scale = 1.0 / (self.head_dim() as f32).sqrt();
        gemm(p, self.square(), qkv, q, qkv, k.t(), scale, 1);
        softmax_rows(p, key_bias);
    }
}

struct Attention {
    heads: usize,
}

struct AttentionBackward {
    heads: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "multi-head-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Heads::new(self.name(), self.heads, l1, l2)?;
        let (qkv, bias) = (data(self.name(), s1, l1)?, data(self.name(), s2, l2)?);
        let (t, d) = (g.tokens, g.d_model);
        let batch = l1.dims()[0];
        let mut out = vec![0f32; batch * t * d];
        out.par_chunks_mut(t * d)
            .zip(qkv.par_chunks(3 * t * d))
            .zip(bias.par_chunks(t))
            .for_each(|((out, qkv), bias)| {
                let mut p = vec![0f32; t * t];
                for h in 0..g.heads {
                    g.probabilities(&mut p, qkv, bias, h);
                    gemm(out, g.merged(h), &p, g.square(), qkv, g.qkv(h)[2], 1.0, 1);
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((batch, t, d))))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_qkv = qkv.apply_op3_no_bwd(
            bias,
            &grad.contiguous()?,
            &AttentionBackward { heads: self.heads },
        )?;
        Ok((Some(grad_qkv), None))
    }
}

impl CustomOp3 for AttentionBackward {
    fn name(&self) -> &'static str {
        "multi-head-attention-backward"
    }

    /// With P recomputed and dO the output gradient of one head: dV = Pᵀ·dO, dP = dO·Vᵀ,
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √dh, dQ = dS·K, dK = dSᵀ·Q.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Heads::new(self.name(), self.heads, l1, l2)?;
        let (qkv, bias) = (data(self.name(), s1, l1)?, data(self.name(), s2, l2)?);
        let grad = data(self.name(), s3, l3)?;
        let (t, d) = (g.tokens, g.d_model);
        if grad.len() != qkv.len() / 3 {
            candle_core::bail!("{}: gradient of the wrong size", self.name())
        }
        let scale = 1.0 / (g.head_dim() as f32).sqrt();
        let mut grad_qkv = vec![0f32; qkv.len()];
        grad_qkv
            .par_chunks_mut(3 * t * d)
            .zip(qkv.par_chunks(3 * t * d))
            .zip(bias.par_chunks(t))
            .zip(grad.par_chunks(t * d))
            .for_each(|(((dqkv, qkv), bias), grad)| {
                let (mut p, mut dp) = (vec![0f32; t * t], vec![0f32; t * t]);
                for h in 0..g.heads {
                    let [q, k, v] = g.qkv(h);
                    let d_out = g.merged(h);
                    g.probabilities(&mut p, qkv, bias, h);
                    gemm(dqkv, v, &p, g.square().t(), grad, d_out, 1.0, 1);
                    gemm(&mut dp, g.square(), grad, d_out, qkv, v.t(), 1.0, 1);
                    for (dp, p) in dp.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                        let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
                        dp.iter_mut()
                            .zip(p)
                            .for_each(|(a, b)| *a = b * (*a - dot) * scale);
                    }
                    gemm(dqkv, q, &dp, g.square(), qkv, k, 1.0, 1);
                    gemm(dqkv, k, &dp, g.square().t(), qkv, q, 1.0, 1);
                }
            });
        Ok((CpuStorage::F32(grad_qkv), l1.shape().clone()))
    }
}

/// The candle composition of the same attention (other devices, and the tests' reference).
fn attention_composition(qkv: &Tensor, key_bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, width) = qkv.dims3()?;
    let d = width / 3;
    let dh = d / heads;
    let qkv = qkv
        .reshape((b, t, 3, heads, dh))?
        .permute((2, 0, 3, 1, 4))?;
    let part = |i: usize| qkv.get(i)?.contiguous();
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?
        .broadcast_add(&key_bias.reshape((b, 1, 1, t))?)?;
    let weights = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
    weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))
}

/// Multi-head attention over the packed projection `qkv` [batch, tokens, 3·d] (queries, keys,
/// values; heads contiguous inside each) with an additive `key_bias` [batch, tokens] (0 for
/// visible keys, a large negative for padding). Returns the merged heads [batch, tokens, d].
pub fn attention(qkv: &Tensor, key_bias: &Tensor, heads: usize) -> Result<Tensor> {
    if !qkv.device().is_cpu() {
        return attention_composition(qkv, key_bias, heads);
    }
    qkv.contiguous()?
        .apply_op2(&key_bias.contiguous()?, Attention { heads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::check;
    use candle_core::Device;

    fn inputs(b: usize, t: usize, d: usize) -> (Tensor, Tensor) {
        let dev = Device::Cpu;
        let qkv = crate::ops::testing::randn(&[b, t, 3 * d], 2.0);
        // the last two keys of every other case are padding
        let bias: Vec<f32> = (0..b * t)
            .map(|i| {
                if (i / t) % 2 == 1 && i % t >= t - 2 {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        (qkv, Tensor::from_vec(bias, (b, t), &dev).unwrap())
    }

    #[test]
    fn fused_attention_matches_the_composition() {
        for (b, t, d, heads) in [(3, 7, 12, 3), (2, 17, 64, 4), (1, 1, 8, 2)] {
            let (qkv, bias) = inputs(b, t, d);
            check(
                &[qkv],
                |x| attention(&x[0], &bias, heads),
                |x| attention_composition(&x[0], &bias, heads),
            );
        }
    }

    #[test]
    fn padded_keys_get_no_weight() {
        let (qkv, bias) = inputs(2, 6, 8);
        let out = attention(&qkv, &bias, 2).unwrap();
        // changing the padded keys' values (case 1, tokens 4 and 5) leaves every output alike
        let noise = crate::ops::testing::randn(&[1, 2, 24], 5.0);
        let changed = qkv.slice_assign(&[1..2, 4..6, 0..24], &noise).unwrap();
        let out2 = attention(&changed, &bias, 2).unwrap();
        let unpadded = |o: &Tensor| o.narrow(1, 0, 4).unwrap();
        let diff = crate::ops::testing::max_diff(&unpadded(&out), &unpadded(&out2));
        assert!(diff < 1e-6, "padding leaked into the output: {diff}");
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let (qkv, _) = inputs(2, 5, 8);
        let bias = Tensor::zeros((2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = attention(&qkv, &bias, 2).unwrap_err();
        assert!(err.to_string().contains("key bias"), "{err}");
    }
}
