//! Element-wise and row kernels of the fused ops, over plain slices.
//!
//! Every loop is branch-free and call-free so that it vectorises, and each public kernel is
//! compiled twice: for the x86-64 baseline (SSE2, 4 floats wide) and for AVX-512 (16 wide),
//! picked at run time by CPU detection, so one binary runs everywhere and uses what it finds.
//! Reductions run in sixteen fixed lanes and a fixed order,
//! so both builds give bit-identical results.

/// Defines a kernel whose body is compiled for the baseline and, on x86-64, for AVX-512F,
/// dispatching on the CPU it runs on.
macro_rules! kernel {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn portable($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) {
                    portable($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { wide($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}

/// A sum in 16 interleaved lanes: vectorisable, and the same order on every CPU.
#[inline(always)]
fn ordered_sum(x: &[f32]) -> f32 {
    ordered_dot_by(x, x, |a, _| a)
}

/// Σ aᵢ·bᵢ in 16 interleaved lanes.
#[inline(always)]
fn ordered_dot(a: &[f32], b: &[f32]) -> f32 {
    ordered_dot_by(a, b, |a, b| a * b)
}

/// Σ term(aᵢ, bᵢ) in 16 lanes of fixed blocks (the tail padded with zeros, so `term(0, 0)`
/// must be 0), folded by halves: one order on every CPU, and whole-register operations.
#[inline(always)]
fn ordered_dot_by(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; BLOCK];
    read_block_pairs(a, b, 0.0, |x, y| {
        for i in 0..BLOCK {
            lanes[i] += term(x[i], y[i]);
        }
    });
    fold_lanes(lanes, |x, y| x + y)
}

/// The larger of two values, as a select (`f32::max` keeps a loop scalar: it must honour NaN).
#[inline(always)]
fn bigger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two (Cody–Waite), so that k·ln 2 is subtracted without rounding error.
const LN_2_HIGH: f32 = 0.693_145_75;
const LN_2_LOW: f32 = 1.428_606_8e-6;
/// 1.5·2²³: adding and subtracting it rounds an f32 of magnitude < 2²² to an integer.
const ROUNDING: f32 = 12_582_912.0;

/// eˣ without branches or calls (libm's `expf` took 15% of a tiny model's step). eˣ = 2ᵏ·eʳ
/// with k = round(x·log₂e) and |r| ≤ ln2/2, eʳ by its Taylor polynomial to r⁶ (truncation
/// below 1.3e-7 relative), 2ᵏ built in the exponent bits. Below −87.3 (where eˣ is subnormal)
/// it returns 0; above 88.3 it saturates at e^88.3.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let clamped = x.clamp(-87.3, 88.3);
    let shifted = clamped * LOG2_E + ROUNDING;
    let k = shifted - ROUNDING;
    let r = (clamped - k * LN_2_HIGH) - k * LN_2_LOW;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // k as an integer is in the low mantissa bits of `shifted`; reading it there keeps the
    // loop in vector registers (`k as i32` is a saturating cast, which compiled to scalar
    // conversions inside the AVX-512 softmax).
    let k_bits = shifted.to_bits().wrapping_sub(ROUNDING.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    if x < -87.3 {
        0.0
    } else {
        p * scale
    }
}

/// tanh through `fast_exp`, within ~2e-7 of libm's `tanhf`; saturates at ±1.
#[inline(always)]
fn fast_tanh(u: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * u) + 1.0)
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// Width of the fixed blocks that short rows are processed in.
const BLOCK: usize = 16;

/// Calls `f` on `x` in blocks of 16, the last one padded with `pad` (only `x`'s own elements
/// are written back). A loop over a fixed-size block compiles to whole vector operations; a
/// plain loop over a short row does not: LLVM unrolls its vector loop to 64 elements, so an
/// attention row of 48 ran entirely in the scalar remainder loop.
#[inline(always)]
fn in_blocks(x: &mut [f32], pad: f32, mut f: impl FnMut(&mut [f32; BLOCK])) {
    let mut blocks = x.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        f(block.try_into().expect("a full block"));
    }
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        let mut block = padded(tail, pad);
        f(&mut block);
        tail.copy_from_slice(&block[..tail.len()]);
    }
}

/// `tail` (shorter than a block) filled up to a block with `pad`.
#[inline(always)]
fn padded(tail: &[f32], pad: f32) -> [f32; BLOCK] {
    let mut block = [pad; BLOCK];
    block[..tail.len()].copy_from_slice(tail);
    block
}

/// `in_blocks` over `x` with the matching blocks of `y` (as long as `x`, padded with `y_pad`).
#[inline(always)]
fn in_block_pairs(
    x: &mut [f32],
    x_pad: f32,
    y: &[f32],
    y_pad: f32,
    mut f: impl FnMut(&mut [f32; BLOCK], &[f32; BLOCK]),
) {
    assert_eq!(x.len(), y.len(), "in_block_pairs: unequal lengths");
    let (mut xs, mut ys) = (x.chunks_exact_mut(BLOCK), y.chunks_exact(BLOCK));
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        f(
            xb.try_into().expect("a full block"),
            yb.try_into().expect("a full block"),
        );
    }
    let (x_tail, y_tail) = (xs.into_remainder(), ys.remainder());
    if !x_tail.is_empty() {
        let mut xb = padded(x_tail, x_pad);
        f(&mut xb, &padded(y_tail, y_pad));
        x_tail.copy_from_slice(&xb[..x_tail.len()]);
    }
}

/// Calls `f` on the matching 16-element blocks of `a` and `b` (of equal length), the last
/// ones padded with `pad`: `in_blocks` for reading.
#[inline(always)]
fn read_block_pairs(
    a: &[f32],
    b: &[f32],
    pad: f32,
    mut f: impl FnMut(&[f32; BLOCK], &[f32; BLOCK]),
) {
    assert_eq!(a.len(), b.len(), "read_block_pairs: unequal lengths");
    let (blocks_a, blocks_b) = (a.chunks_exact(BLOCK), b.chunks_exact(BLOCK));
    let (tail_a, tail_b) = (blocks_a.remainder(), blocks_b.remainder());
    for (x, y) in blocks_a.zip(blocks_b) {
        f(
            x.try_into().expect("a full block"),
            y.try_into().expect("a full block"),
        );
    }
    if !tail_a.is_empty() {
        f(&padded(tail_a, pad), &padded(tail_b, pad));
    }
}

/// Folds lanes into one by halves (8 + 8, 4 + 4, ...): log₂ N dependent vector steps instead
/// of N dependent scalar ones, which dominated the softmax of short rows.
#[inline(always)]
fn fold_lanes<const N: usize>(mut lanes: [f32; N], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = N / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] = combine(lanes[i], lanes[i + width]);
        }
        width /= 2;
    }
    lanes[0]
}

kernel! {
    /// Adds `key_bias` to every row of `scores` (rows of `key_bias.len()`), then takes each
    /// row's softmax in place (max-subtracted, so -1e9 biases give exact zeros).
    pub fn softmax_rows(scores: &mut [f32], key_bias: &[f32]) {
        for row in scores.chunks_exact_mut(key_bias.len()) {
            // Padding with −∞ leaves the maximum alone and adds e^−∞ = 0 to the sum.
            let mut maxima = [f32::NEG_INFINITY; BLOCK];
            in_block_pairs(row, f32::NEG_INFINITY, key_bias, 0.0, |s, b| {
                for i in 0..BLOCK {
                    s[i] += b[i];
                    maxima[i] = bigger(maxima[i], s[i]);
                }
            });
            let max = fold_lanes(maxima, bigger);
            let mut sums = [0f32; BLOCK];
            in_blocks(row, f32::NEG_INFINITY, |s| {
                for i in 0..BLOCK {
                    s[i] = fast_exp(s[i] - max);
                    sums[i] += s[i];
                }
            });
            let inv = 1.0 / fold_lanes(sums, |a, b| a + b);
            in_blocks(row, 0.0, |s| s.iter_mut().for_each(|v| *v *= inv));
        }
    }
}

/// Far below any similarity, finite (so that 0 × pad is 0): padding for `distilled_nce`.
const FAR_BELOW: f32 = -1e30;

kernel! {
    /// InfoNCE with momentum distillation over rows of similarities (rows of `width` =
    /// `online.len() / losses.len()`). With z = inv_temp·online, zₘ = inv_temp·momentum and
    /// row i's target t = first_target + i, the soft target is
    /// q = α·softmax(zₘ) + (1 − α)·one-hot(t), and the row's loss −Σⱼ qⱼ·log softmax(z)ⱼ goes
    /// to `losses[i]`. With `grad = Some((dz, dz_dot_z))` it also writes ∂loss/∂z =
    /// softmax(z) − q to `dz` and Σⱼ ∂loss/∂zⱼ·zⱼ to `dz_dot_z[i]` (for the temperature's
    /// gradient).
    pub fn distilled_nce(
        online: &[f32],
        momentum: &[f32],
        inv_temp: f32,
        alpha: f32,
        first_target: usize,
        losses: &mut [f32],
        grad: Option<(&mut [f32], &mut [f32])>,
    ) {
        let width = online.len() / losses.len().max(1);
        let mut grad = grad;
        for (i, loss) in losses.iter_mut().enumerate() {
            let span = i * width..(i + 1) * width;
            let (s, m, t) = (&online[span.clone()], &momentum[span.clone()], first_target + i);
            let (mut max_s, mut max_m) = ([FAR_BELOW; BLOCK], [FAR_BELOW; BLOCK]);
            read_block_pairs(s, m, FAR_BELOW, |sb, mb| {
                for j in 0..BLOCK {
                    max_s[j] = bigger(max_s[j], sb[j]);
                    max_m[j] = bigger(max_m[j], mb[j]);
                }
            });
            let max_z = fold_lanes(max_s, bigger) * inv_temp;
            let max_zm = fold_lanes(max_m, bigger) * inv_temp;
            // Σ e^(z − max), Σ e^(zₘ − max) and Σ e^(zₘ − max)·z, in one pass.
            let (mut sum_z, mut sum_m, mut weighted) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
            read_block_pairs(s, m, FAR_BELOW, |sb, mb| {
                for j in 0..BLOCK {
                    let teacher = fast_exp(mb[j] * inv_temp - max_zm);
                    sum_z[j] += fast_exp(sb[j] * inv_temp - max_z);
                    sum_m[j] += teacher;
                    weighted[j] += teacher * sb[j];
                }
            });
            let add = |a: f32, b: f32| a + b;
            let sum_m = fold_lanes(sum_m, add);
            let expected_z = fold_lanes(weighted, add) * inv_temp / sum_m;
            let log_norm = max_z + fold_lanes(sum_z, add).ln();
            *loss = log_norm - alpha * expected_z - (1.0 - alpha) * s[t] * inv_temp;
            if let Some((dz, dz_dot_z)) = &mut grad {
                let d = &mut dz[span];
                let teacher = alpha / sum_m;
                for ((d, &x), &y) in d.iter_mut().zip(s).zip(m) {
                    *d = fast_exp(x * inv_temp - log_norm)
                        - teacher * fast_exp(y * inv_temp - max_zm);
                }
                d[t] -= 1.0 - alpha;
                dz_dot_z[i] = ordered_dot(d, s) * inv_temp;
            }
        }
    }
}

kernel! {
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), candle's tanh-approximated GELU.
    pub fn gelu(x: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = 0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)));
        }
    }
}

kernel! {
    /// g · GELU'(x), with GELU'(x) = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)
    /// and t = tanh(√(2/π)·(x + 0.044715·x³)).
    pub fn gelu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
        for ((o, &x), g) in out.iter_mut().zip(x).zip(grad) {
            let t = fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
            let slope = 0.5 * (1.0 + t)
                + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
            *o = g * slope;
        }
    }
}

/// Writes `row` − mean into `centered` and returns 1/sqrt(var + eps).
#[inline(always)]
fn center(row: &[f32], centered: &mut [f32], eps: f32) -> f32 {
    let n = row.len() as f32;
    let mean = ordered_sum(row) / n;
    centered
        .iter_mut()
        .zip(row)
        .for_each(|(c, v)| *c = v - mean);
    1.0 / (ordered_dot(centered, centered) / n + eps).sqrt()
}

kernel! {
    /// LayerNorm of each row of `x` (rows of `weight.len()`): x̂·weight + bias.
    pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
        let width = weight.len();
        let mut centered = vec![0f32; width];
        for (row, dst) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let inv = center(row, &mut centered, eps);
            // Zipped, not indexed: indexing kept bounds checks that stopped vectorisation
            // (this loop was 2.3 times slower than PyTorch's LayerNorm).
            for (((d, c), w), b) in dst.iter_mut().zip(&centered).zip(weight).zip(bias) {
                *d = c * inv * w + b;
            }
        }
    }
}

kernel! {
    /// LayerNorm's gradients. With x̂ the normalised row, σ = sqrt(var + eps) and h = g ⊙ w:
    /// dx = (h − mean(h) − x̂ ⊙ mean(h ⊙ x̂)) / σ; dw += Σ_rows g ⊙ x̂; db += Σ_rows g.
    pub fn layer_norm_backward(
        x: &[f32],
        weight: &[f32],
        grad: &[f32],
        eps: f32,
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        let width = weight.len();
        let n = width as f32;
        let (mut normed, mut h) = (vec![0f32; width], vec![0f32; width]);
        for ((row, g), dst) in x
            .chunks_exact(width)
            .zip(grad.chunks_exact(width))
            .zip(dx.chunks_exact_mut(width))
        {
            let inv = center(row, &mut normed, eps);
            // Every slice cut to `width` first, so that the indexed loop has no bounds checks.
            let (normed, h, g) = (&mut normed[..width], &mut h[..width], &g[..width]);
            let (weight, dw, db) = (&weight[..width], &mut dw[..width], &mut db[..width]);
            for j in 0..width {
                normed[j] *= inv;
                h[j] = g[j] * weight[j];
                dw[j] += g[j] * normed[j];
                db[j] += g[j];
            }
            let (mean_h, mean_hx) = (ordered_sum(h) / n, ordered_dot(h, normed) / n);
            for ((d, &h), &x) in dst.iter_mut().zip(&*h).zip(&*normed) {
                *d = (h - mean_h - x * mean_hx) * inv;
            }
        }
    }
}

kernel! {
    /// Adds `bias` to every row of `y` (rows of `bias.len()`).
    pub fn add_to_rows(y: &mut [f32], bias: &[f32]) {
        for row in y.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
        }
    }
}

kernel! {
    /// Sums of the columns of `x` (rows of `sums.len()`), into `sums`.
    pub fn column_sums(x: &[f32], sums: &mut [f32]) {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for row in x.chunks_exact(sums.len()) {
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm() {
        // the normal range of eˣ, in steps of 8.8e-4
        for i in -99_000..=100_000 {
            let x = i as f32 * 8.8e-4;
            let (fast, exact) = (fast_exp(x), x.exp());
            assert!(
                (fast - exact).abs() <= 3e-7 * exact,
                "exp({x}): {fast} vs {exact}"
            );
        }
        assert_eq!(fast_exp(-1e9), 0.0);
        assert!(fast_exp(1e9).is_finite());
    }

    #[test]
    fn fast_tanh_matches_libm() {
        for i in -2000..=2000 {
            let u = i as f32 * 0.01;
            assert!((fast_tanh(u) - u.tanh()).abs() < 2e-7, "{u}");
        }
        assert_eq!((fast_tanh(100.0), fast_tanh(-100.0)), (1.0, -1.0));
    }

    #[test]
    fn softmax_rows_masks_and_normalises() {
        let mut scores = [0.5f32, 3.0, 2.0, 1.0, 1.0, 1.0];
        softmax_rows(&mut scores, &[0.0, -1e9, 0.0]);
        assert_eq!((scores[1], scores[4]), (0.0, 0.0));
        let e = 1.5f32.exp();
        assert!((scores[2] - e / (1.0 + e)).abs() < 1e-6, "{scores:?}");
        assert!((scores[3] - 0.5).abs() < 1e-6 && (scores[5] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn ordered_reductions_match_plain_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((ordered_dot(&a, &b) - plain).abs() < 1e-4);
        assert_eq!(ordered_sum(&a), 85.5);
        assert_eq!(
            fold_lanes::<BLOCK>(std::array::from_fn(|i| i as f32), f32::max),
            15.0
        );
        assert_eq!(fold_lanes([0.25; BLOCK], |x, y| x + y), 4.0);
    }

    #[test]
    fn softmax_of_rows_with_partial_blocks_matches_the_definition() {
        // Rows of 37: two full blocks and a padded one, with the largest score in the tail
        // block and a masked key in a full one.
        let width = 37;
        let bias: Vec<f32> = (0..width)
            .map(|j| if j == 5 { -1e9 } else { 0.0 })
            .collect();
        let raw: Vec<f32> = (0..2 * width)
            .map(|i| ((i * 7919) % 101) as f32 * 0.05 + if i % width == 35 { 9.0 } else { 0.0 })
            .collect();
        let mut fused = raw.clone();
        softmax_rows(&mut fused, &bias);
        for (row, got) in raw.chunks(width).zip(fused.chunks(width)) {
            let biased: Vec<f64> = row.iter().zip(&bias).map(|(s, b)| (s + b) as f64).collect();
            let max = biased.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = biased.iter().map(|s| (s - max).exp()).sum();
            for (s, g) in biased.iter().zip(got) {
                let want = (s - max).exp() / total;
                assert!((want - *g as f64).abs() < 1e-6, "{want} vs {g}");
            }
        }
    }

    #[test]
    fn column_sums_overwrite_their_output() {
        let mut sums = [7.0f32; 2];
        column_sums(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut sums);
        assert_eq!(sums, [9.0, 12.0]);
    }
}
