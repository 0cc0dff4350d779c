//! A ridge classifier whose regularisation is chosen by exact leave-one-out cross-validation
//! on the training cases, as scikit-learn's `RidgeClassifierCV` does: one-vs-all targets of
//! ±1 (a single column for two classes), an unpenalised intercept, and for every candidate α
//! the closed-form leave-one-out residuals (y − ŷ) / (1 − h) from one eigendecomposition.
//! Deterministic, no epochs, and TEST is never seen: `fit` takes training cases only.
//!
//! The linear algebra is nalgebra's (symmetric eigendecomposition of the smaller Gram matrix,
//! n×n or d×d); nothing here is a hand-written solver.

use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// The regularisation grid of MiniRocket's reference classifier (and ours): 10⁻³ … 10³.
pub fn default_alphas() -> Vec<f64> {
    (0..10)
        .map(|i| 10f64.powf(-3.0 + 6.0 * i as f64 / 9.0))
        .collect()
}

/// A fitted classifier: features are standardised with TRAIN's statistics (and multiplied by
/// their column weights), then scored by `weights` and `intercept`.
#[derive(Clone, Debug)]
pub struct RidgeClassifier {
    mean: DVector<f64>,
    /// Per column: the column weight over TRAIN's standard deviation.
    factor: DVector<f64>,
    /// [features, targets]
    weights: DMatrix<f64>,
    intercept: DVector<f64>,
    classes: usize,
    /// The chosen α, and the mean squared leave-one-out error of every candidate.
    pub alpha: f64,
    pub loo_errors: Vec<(f64, f64)>,
}

/// The training cases as a matrix: `rows` [n][d].
fn matrix(rows: &[Vec<f32>]) -> DMatrix<f64> {
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    DMatrix::from_fn(n, d, |i, j| rows[i][j] as f64)
}

/// (x − mean) · factor, column by column.
fn standardised(x: &DMatrix<f64>, mean: &DVector<f64>, factor: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
        (x[(i, j)] - mean[j]) * factor[j]
    })
}

/// ±1 one-vs-all targets: one column for two classes (class 1 positive), else one per class.
fn targets(labels: &[usize], classes: usize) -> DMatrix<f64> {
    let columns = if classes == 2 { 1 } else { classes };
    DMatrix::from_fn(labels.len(), columns, |i, c| {
        let positive = if classes == 2 { 1 } else { c };
        if labels[i] == positive {
            1.0
        } else {
            -1.0
        }
    })
}

impl RidgeClassifier {
    /// Fits on `features` [n][d] with `labels` in 0..classes, choosing α from `alphas` by
    /// the mean squared leave-one-out error of the ±1 targets (the first of equal errors).
    pub fn fit(
        features: &[Vec<f32>],
        labels: &[usize],
        classes: usize,
        alphas: &[f64],
    ) -> Result<Self> {
        let d = features.first().map_or(0, Vec::len);
        Self::fit_weighted(features, &vec![1.0; d], labels, classes, alphas)
    }

    /// [`fit`](Self::fit), with each standardised column multiplied by its weight in
    /// `column_weights` (0 removes it): under one penalty, a block of few columns weighted
    /// up counts as much as a block of many.
    pub fn fit_weighted(
        features: &[Vec<f32>],
        column_weights: &[f64],
        labels: &[usize],
        classes: usize,
        alphas: &[f64],
    ) -> Result<Self> {
        if let Some(i) = features
            .iter()
            .position(|f| f.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::Other(format!(
                "the features of TRAIN case {} are not finite (a diverged encoder?)",
                i + 1
            )));
        }
        let x = matrix(features);
        let (n, d) = x.shape();
        if column_weights.len() != d {
            return Err(Error::Other(format!(
                "{} column weights for {d} features",
                column_weights.len()
            )));
        }
        let mean = DVector::from_fn(d, |j, _| x.column(j).mean());
        let factor = DVector::from_fn(d, |j, _| {
            let sd = x.column(j).variance().sqrt();
            column_weights[j] / if sd > 1e-12 { sd } else { 1.0 }
        });
        let a = standardised(&x, &mean, &factor);
        let y = targets(labels, classes);
        let y_mean = DVector::from_fn(y.ncols(), |c, _| y.column(c).mean());
        let yc = DMatrix::from_fn(n, y.ncols(), |i, c| y[(i, c)] - y_mean[c]);

        // Thin SVD A = U S Vᵀ from the smaller Gram matrix: s = S² are its eigenvalues.
        let (u, s) = left_singular_vectors(&a)?;
        let uty = u.transpose() * &yc;
        let leverage_sq = u.map(|v| v * v);
        let mut loo_errors = Vec::with_capacity(alphas.len());
        for &alpha in alphas {
            let shrink = s.map(|si| si / (si + alpha));
            let fitted = &u * scale_rows(&uty, &shrink);
            // h_ii of the model with the (unpenalised) intercept: 1/n plus the ridge part.
            let h = &leverage_sq * &shrink;
            let mut sq = 0.0;
            for i in 0..n {
                let denom = (1.0 - 1.0 / n as f64 - h[i]).max(1e-12);
                for c in 0..yc.ncols() {
                    let r = (yc[(i, c)] - fitted[(i, c)]) / denom;
                    sq += r * r;
                }
            }
            loo_errors.push((alpha, sq / (n * yc.ncols()) as f64));
        }
        let alpha = loo_errors
            .iter()
            .fold(None::<(f64, f64)>, |best, &(a, e)| match best {
                Some((_, be)) if be <= e => best,
                _ => Some((a, e)),
            })
            .map_or(1.0, |(a, _)| a);
        let inverse = s.map(|si| 1.0 / (si + alpha));
        let dual = &u * scale_rows(&uty, &inverse);
        let weights = a.transpose() * dual;
        Ok(RidgeClassifier {
            mean,
            factor,
            weights,
            intercept: y_mean,
            classes,
            alpha,
            loo_errors,
        })
    }

    /// The mean squared leave-one-out error at the chosen α.
    pub fn loo_error(&self) -> f64 {
        self.loo_errors
            .iter()
            .find(|e| e.0 == self.alpha)
            .map_or(f64::NAN, |e| e.1)
    }

    /// The decision function on raw features as one affine map, score = W·x + b: W
    /// [targets][d] and b [targets]. One target for two classes (positive: class 1).
    pub fn affine(&self) -> (Vec<Vec<f64>>, Vec<f64>) {
        let targets = self.weights.ncols();
        let w: Vec<Vec<f64>> = (0..targets)
            .map(|c| {
                (0..self.mean.len())
                    .map(|j| self.factor[j] * self.weights[(j, c)])
                    .collect()
            })
            .collect();
        let b = (0..targets)
            .map(|c| {
                let shift: f64 = w[c].iter().zip(self.mean.iter()).map(|(w, m)| w * m).sum();
                self.intercept[c] - shift
            })
            .collect();
        (w, b)
    }

    /// Decision values [n][targets] of `features` [n][d].
    fn decision(&self, features: &[Vec<f32>]) -> DMatrix<f64> {
        let a = standardised(&matrix(features), &self.mean, &self.factor);
        let mut scores = a * &self.weights;
        for mut row in scores.row_iter_mut() {
            row += self.intercept.transpose();
        }
        scores
    }

    /// The predicted class of each row of `features`.
    pub fn predict(&self, features: &[Vec<f32>]) -> Vec<usize> {
        let scores = self.decision(features);
        scores
            .row_iter()
            .map(|row| {
                if self.classes == 2 {
                    usize::from(row[0] > 0.0)
                } else {
                    (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best })
                }
            })
            .collect()
    }
}

/// `m` with row k multiplied by `factors[k]` (a diagonal matrix times `m`, without forming it).
fn scale_rows(m: &DMatrix<f64>, factors: &DVector<f64>) -> DMatrix<f64> {
    let mut out = m.clone();
    for (k, mut row) in out.row_iter_mut().enumerate() {
        row *= factors[k];
    }
    out
}

/// U (n × r) and s = S² (r) of the thin SVD of `a`, for the r singular values that are not
/// numerically zero, from the eigendecomposition of A Aᵀ (n ≤ d) or AᵀA (n > d).
fn left_singular_vectors(a: &DMatrix<f64>) -> Result<(DMatrix<f64>, DVector<f64>)> {
    let (n, d) = a.shape();
    let by_rows = n <= d;
    let gram = if by_rows {
        a * a.transpose()
    } else {
        a.transpose() * a
    };
    let size = gram.nrows();
    // A cap on the iterations: an eigensolver that does not converge is an error, not a hang.
    let eig = SymmetricEigen::try_new(gram, f64::EPSILON, 1000 * size.max(1)).ok_or_else(|| {
        Error::Other(format!(
            "the ridge probe's eigendecomposition of a {size}×{size} Gram matrix did not converge"
        ))
    })?;
    let top = eig.eigenvalues.iter().cloned().fold(0.0f64, f64::max);
    let keep: Vec<usize> = (0..eig.eigenvalues.len())
        .filter(|&j| eig.eigenvalues[j] > top * 1e-12 && eig.eigenvalues[j] > 0.0)
        .collect();
    let s = DVector::from_iterator(keep.len(), keep.iter().map(|&j| eig.eigenvalues[j]));
    let u = if by_rows {
        DMatrix::from_fn(n, keep.len(), |i, k| eig.eigenvectors[(i, keep[k])])
    } else {
        // U = A V S⁻¹
        let v = DMatrix::from_fn(d, keep.len(), |i, k| eig.eigenvectors[(i, keep[k])]);
        let mut u = a * v;
        for (k, mut column) in u.column_iter_mut().enumerate() {
            column /= s[k].sqrt();
        }
        u
    };
    Ok((u, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;
    use rand::Rng;

    /// Leave-one-out by refitting n times, with a plain normal-equations solve.
    fn brute_force_loo(features: &[Vec<f32>], labels: &[usize], classes: usize, alpha: f64) -> f64 {
        let n = features.len();
        let mut sq = 0.0;
        let mut count = 0;
        for held in 0..n {
            let rows: Vec<Vec<f32>> = (0..n)
                .filter(|&i| i != held)
                .map(|i| features[i].clone())
                .collect();
            let labs: Vec<usize> = (0..n).filter(|&i| i != held).map(|i| labels[i]).collect();
            // Standardise with the full set's statistics (as the closed form does): the
            // intercept absorbs the mean, and the scale is part of the feature map.
            let full = matrix(features);
            let d = full.ncols();
            let mean = DVector::from_fn(d, |j, _| full.column(j).mean());
            let scale = DVector::from_fn(d, |j, _| full.column(j).variance().sqrt().max(1e-12));
            let x = matrix(&rows);
            let a = DMatrix::from_fn(n - 1, d + 1, |i, j| {
                if j == d {
                    1.0
                } else {
                    (x[(i, j)] - mean[j]) / scale[j]
                }
            });
            let y = targets(&labs, classes);
            let mut penalty = DMatrix::identity(d + 1, d + 1) * alpha;
            penalty[(d, d)] = 0.0; // the intercept is not penalised
            let w = (a.transpose() * &a + penalty)
                .lu()
                .solve(&(a.transpose() * &y))
                .unwrap();
            let xh = DMatrix::from_fn(1, d + 1, |_, j| {
                if j == d {
                    1.0
                } else {
                    (features[held][j] as f64 - mean[j]) / scale[j]
                }
            });
            let pred = xh * w;
            let truth = targets(&[labels[held]], classes);
            for c in 0..truth.ncols() {
                sq += (truth[(0, c)] - pred[(0, c)]).powi(2);
                count += 1;
            }
        }
        sq / count as f64
    }

    fn problem(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = sample_rng(seed, 0);
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let features = labels
            .iter()
            .map(|&l| {
                (0..d)
                    .map(|j| rng.random_range(-1.0..1.0) + if j % classes == l { 1.5 } else { 0.0 })
                    .collect()
            })
            .collect();
        (features, labels)
    }

    #[test]
    fn closed_form_leave_one_out_matches_refitting() {
        // Both shapes of the Gram matrix: n < d and n > d; binary and three classes.
        for (n, d, classes) in [(12, 20, 2), (30, 5, 3), (9, 9, 3)] {
            let (x, y) = problem(n, d, classes, n as u64);
            let fitted = RidgeClassifier::fit(&x, &y, classes, &[0.01, 1.0, 30.0]).unwrap();
            for &(alpha, err) in &fitted.loo_errors {
                let want = brute_force_loo(&x, &y, classes, alpha);
                assert!(
                    (err - want).abs() < 1e-6 * want.max(1.0),
                    "n {n} d {d} α {alpha}: {err} vs {want}"
                );
            }
        }
    }

    #[test]
    fn column_weights_act_as_the_penalty_says() {
        let (x, y) = problem(30, 6, 3, 5);
        let alphas = default_alphas();
        // Weight 0 removes a column: the fit equals the one without it.
        let mut w = vec![1.0; 6];
        w[5] = 0.0;
        let weighted = RidgeClassifier::fit_weighted(&x, &w, &y, 3, &alphas).unwrap();
        let dropped: Vec<Vec<f32>> = x.iter().map(|r| r[..5].to_vec()).collect();
        let plain = RidgeClassifier::fit(&dropped, &y, 3, &alphas).unwrap();
        for ((a1, e1), (a2, e2)) in weighted.loo_errors.iter().zip(&plain.loo_errors) {
            assert_eq!(a1, a2);
            assert!((e1 - e2).abs() < 1e-10, "{e1} vs {e2}");
        }
        // Every column weighted by 2 is the unweighted fit with α / 4.
        let doubled = RidgeClassifier::fit_weighted(&x, &[2.0; 6], &y, 3, &alphas).unwrap();
        let quarter: Vec<f64> = alphas.iter().map(|a| a / 4.0).collect();
        let plain = RidgeClassifier::fit(&x, &y, 3, &quarter).unwrap();
        for ((_, e1), (_, e2)) in doubled.loo_errors.iter().zip(&plain.loo_errors) {
            assert!((e1 - e2).abs() < 1e-10, "{e1} vs {e2}");
        }
        assert_eq!(doubled.predict(&x), plain.predict(&x));
        // The affine form gives the same decisions.
        let (w, b) = doubled.affine();
        let scores = doubled.decision(&x);
        for (i, row) in x.iter().enumerate() {
            for c in 0..w.len() {
                let s: f64 = w[c]
                    .iter()
                    .zip(row)
                    .map(|(w, v)| w * *v as f64)
                    .sum::<f64>()
                    + b[c];
                assert!((s - scores[(i, c)]).abs() < 1e-9);
            }
        }
        let err = RidgeClassifier::fit_weighted(&x, &[1.0; 5], &y, 3, &alphas).unwrap_err();
        assert!(err.to_string().contains("5 column weights for 6 features"));
    }

    #[test]
    fn a_separable_problem_is_learned_and_predicted() {
        let (x, y) = problem(60, 8, 3, 7);
        let fitted = RidgeClassifier::fit(&x, &y, 3, &default_alphas()).unwrap();
        let (test_x, test_y) = problem(30, 8, 3, 8);
        let correct = fitted
            .predict(&test_x)
            .iter()
            .zip(&test_y)
            .filter(|(p, t)| p == t)
            .count();
        assert!(correct >= 27, "{correct}/30");
        // Deterministic: the same fit twice gives the same α and weights.
        let again = RidgeClassifier::fit(&x, &y, 3, &default_alphas()).unwrap();
        assert_eq!((again.alpha, again.weights), (fitted.alpha, fitted.weights));
    }

    #[test]
    fn binary_labels_use_one_signed_column() {
        let x = vec![vec![-2.0], vec![-1.0], vec![1.0], vec![2.0]];
        let fitted = RidgeClassifier::fit(&x, &[0, 0, 1, 1], 2, &[1e-3]).unwrap();
        let bad = vec![vec![f32::NAN], vec![1.0]];
        assert!(RidgeClassifier::fit(&bad, &[0, 1], 2, &[1.0]).is_err());
        assert_eq!(fitted.weights.ncols(), 1);
        assert_eq!(fitted.predict(&[vec![-5.0], vec![5.0]]), vec![0, 1]);
    }
}
