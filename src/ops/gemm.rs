//! Matrix products over strided views of plain slices, for the fused ops. They go through the
//! `gemm` crate that candle's own matmul uses (with its AVX-512 kernels enabled), without
//! candle's copies of non-contiguous operands and without a graph node per product.

use std::mem::MaybeUninit;

/// A strided matrix inside a slice: element (r, c) is at `offset + r·row_stride + c·col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View {
    pub fn row_major(offset: usize, rows: usize, cols: usize, row_stride: usize) -> View {
        View {
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// A whole contiguous row-major matrix.
    pub fn matrix(rows: usize, cols: usize) -> View {
        View::row_major(0, rows, cols, cols)
    }

    pub fn t(self) -> View {
        View {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the last element the view touches (the view is not empty).
    fn end(&self) -> usize {
        self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// `dst = scale · a · b`, on `threads` rayon threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dst: &mut [f32],
    d: View,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
    scale: f32,
    threads: usize,
) {
    product(as_uninit(dst), d, a, av, b, bv, scale, threads)
}

/// `scale · a · b` as a new row-major matrix, on `threads` rayon threads, with room for
/// `extra` more elements after it. The buffer is not zero-filled first (a memset the size of
/// every gradient): the product writes it all.
#[allow(clippy::too_many_arguments)]
pub fn gemm_new(
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
    scale: f32,
    threads: usize,
    extra: usize,
) -> Vec<f32> {
    let len = av.rows * bv.cols;
    let mut out = Vec::with_capacity(len + extra);
    let d = View::matrix(av.rows, bv.cols);
    product(
        &mut out.spare_capacity_mut()[..len],
        d,
        a,
        av,
        b,
        bv,
        scale,
        threads,
    );
    // SAFETY: `product` writes every element of the `len`-element matrix `d` (gemm's contract
    // when it does not read its destination; zeros when the inner dimension is empty).
    unsafe { out.set_len(len) };
    out
}

/// An initialised slice seen as possibly-uninitialised memory, for `product`.
fn as_uninit(dst: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; `product` writes only initialised values, so `dst` stays
    // initialised.
    unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `dst = scale · a · b`, writing every element of `d` and reading none. The extents are
/// checked here, and the borrow rules keep `dst` apart from `a` and `b`, which makes the call
/// sound.
#[allow(clippy::too_many_arguments)]
fn product(
    dst: &mut [MaybeUninit<f32>],
    d: View,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
    scale: f32,
    threads: usize,
) {
    assert!(
        d.rows == av.rows && d.cols == bv.cols && av.cols == bv.rows,
        "gemm: {d:?} = {av:?} x {bv:?}"
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if av.cols == 0 {
        for r in 0..d.rows {
            for c in 0..d.cols {
                dst[d.offset + r * d.row_stride + c * d.col_stride].write(0.0);
            }
        }
        return;
    }
    assert!(d.end() <= dst.len() && av.end() <= a.len() && bv.end() <= b.len());
    let stride = |s: usize| s as isize;
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element of the three views lies inside its slice (checked above), and
    // `dst` is borrowed mutably, so it cannot overlap `a` or `b`.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            av.cols,
            dst.as_mut_ptr().add(d.offset).cast::<f32>(),
            stride(d.col_stride),
            stride(d.row_stride),
            false, // dst is not read
            a.as_ptr().add(av.offset),
            stride(av.col_stride),
            stride(av.row_stride),
            b.as_ptr().add(bv.offset),
            stride(bv.col_stride),
            stride(bv.row_stride),
            0.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by the definition, for comparison.
    fn naive(a: &[f32], av: View, b: &[f32], bv: View) -> Vec<f32> {
        let at = |s: &[f32], v: View, r: usize, c: usize| {
            s[v.offset + r * v.row_stride + c * v.col_stride]
        };
        let mut out = vec![0f32; av.rows * bv.cols];
        for r in 0..av.rows {
            for c in 0..bv.cols {
                out[r * bv.cols + c] = (0..av.cols)
                    .map(|k| at(a, av, r, k) * at(b, bv, k, c))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_the_definition() {
        let a: Vec<f32> = (0..60).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..60).map(|i| (i as f32 * 0.91).cos()).collect();
        // a: 3×4 starting at 5 with row stride 7; b: a transposed 4×5 view (column-major).
        let (av, bv) = (View::row_major(5, 3, 4, 7), View::row_major(2, 5, 4, 9).t());
        for threads in [1, 2] {
            let mut dst = vec![0f32; 15];
            gemm(&mut dst, View::matrix(3, 5), &a, av, &b, bv, 1.0, threads);
            for (x, y) in dst.iter().zip(naive(&a, av, &b, bv)) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
            let fresh = gemm_new(&a, av, &b, bv, 1.0, threads, 0);
            assert_eq!(fresh, dst);
        }
    }

    #[test]
    #[should_panic]
    fn a_view_past_the_end_is_refused() {
        let mut dst = vec![0f32; 4];
        gemm(
            &mut dst,
            View::matrix(2, 2),
            &[0.0; 3],
            View::matrix(2, 2),
            &[0.0; 4],
            View::matrix(2, 2),
            1.0,
            1,
        );
    }
}
