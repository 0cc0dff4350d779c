//! Adaptive Dormand–Prince 5(4) integration, reported on a fixed output grid.
//!
//! The solver steps interval by interval between grid points, so a piecewise-linear forcing
//! (interpolated from a sampled excitation) is smooth inside every step it takes.

/// Why an integration was abandoned.
#[derive(Debug, Clone, PartialEq)]
pub enum SolveError {
    /// A state became NaN/inf or left `±bound`.
    Diverged { t: f64 },
    /// The step size fell below a representable fraction of the interval (stiff or singular).
    StepUnderflow { t: f64 },
    /// More than `max_steps` accepted+rejected steps.
    TooManySteps,
}

#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    /// States beyond ±bound count as divergence.
    pub bound: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rtol: 1e-6,
            atol: 1e-9,
            max_steps: 200_000,
            bound: 1e6,
        }
    }
}

// Dormand–Prince coefficients.
const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// Fifth-order weights: the last row of A (first-same-as-last).
const B5: [f64; 7] = [A[6][0], A[6][1], A[6][2], A[6][3], A[6][4], A[6][5], 0.0];
/// Fourth-order embedded weights.
const B4: [f64; 7] = [
    5179.0 / 57600.0,
    0.0,
    7571.0 / 16695.0,
    393.0 / 640.0,
    -92097.0 / 339200.0,
    187.0 / 2100.0,
    1.0 / 40.0,
];

/// `rhs(interval, t, y, dy)` writes dy/dt into `dy`.
pub type RightHandSide<'a> = dyn FnMut(usize, f64, &[f64], &mut [f64]) + 'a;

/// Integrates `dy/dt = rhs(interval, t, y)` from `y0` at `grid[0]` and returns the states at
/// every grid point as `[state][k]`. `interval` is the index k with t in [grid[k], grid[k+1]].
pub fn solve_on_grid(
    rhs: &mut RightHandSide,
    y0: &[f64],
    grid: &[f64],
    tol: Tolerance,
) -> Result<Vec<Vec<f64>>, SolveError> {
    let n = y0.len();
    let mut out: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut v = Vec::with_capacity(grid.len());
            v.push(y0[i]);
            v
        })
        .collect();
    let mut y = y0.to_vec();
    let mut k = vec![vec![0.0; n]; 7];
    let mut stage = vec![0.0; n];
    let mut y_new = vec![0.0; n];
    let mut steps = 0usize;
    let mut h = grid.get(1).map(|g| (g - grid[0]) / 4.0).unwrap_or(0.0);
    for interval in 0..grid.len().saturating_sub(1) {
        let (mut t, t_end) = (grid[interval], grid[interval + 1]);
        let span = t_end - t;
        rhs(interval, t, &y, &mut k[0]);
        while t < t_end {
            h = h.min(t_end - t).max(0.0);
            if h <= span * 1e-12 {
                return Err(SolveError::StepUnderflow { t });
            }
            steps += 1;
            if steps > tol.max_steps {
                return Err(SolveError::TooManySteps);
            }
            for s in 1..7 {
                for i in 0..n {
                    let mut acc = y[i];
                    for (j, kj) in k.iter().enumerate().take(s) {
                        acc += h * A[s][j] * kj[i];
                    }
                    stage[i] = acc;
                }
                let (_, rest) = k.split_at_mut(s);
                rhs(interval, t + C[s] * h, &stage, &mut rest[0]);
            }
            // The last stage was evaluated at the 5th-order solution.
            y_new.copy_from_slice(&stage);
            let mut err_sq = 0.0;
            for i in 0..n {
                let mut e = 0.0;
                for s in 0..7 {
                    e += (B5[s] - B4[s]) * k[s][i];
                }
                let scale = tol.atol + tol.rtol * y[i].abs().max(y_new[i].abs());
                err_sq += (h * e / scale).powi(2);
            }
            let err = (err_sq / n.max(1) as f64).sqrt();
            if !err.is_finite() {
                h *= 0.2;
                continue;
            }
            if err <= 1.0 {
                t += h;
                y.copy_from_slice(&y_new);
                if y.iter().any(|v| !v.is_finite() || v.abs() > tol.bound) {
                    return Err(SolveError::Diverged { t });
                }
                let (first, last) = k.split_at_mut(6);
                first[0].copy_from_slice(&last[0]);
            }
            let factor = if err == 0.0 {
                5.0
            } else {
                (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
            };
            h *= factor;
        }
        for i in 0..n {
            out[i].push(y[i]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(t_end: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| t_end * i as f64 / (n - 1) as f64).collect()
    }

    #[test]
    fn harmonic_oscillator_matches_cos_and_sin() {
        let omega = 2.3;
        let g = grid(20.0, 257);
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| {
            dy[0] = y[1];
            dy[1] = -omega * omega * y[0];
        };
        let sol = solve_on_grid(&mut rhs, &[1.0, 0.0], &g, Tolerance::default()).unwrap();
        for (k, t) in g.iter().enumerate() {
            assert!((sol[0][k] - (omega * t).cos()).abs() < 1e-5, "t = {t}");
            assert!(
                (sol[1][k] + omega * (omega * t).sin()).abs() < 1e-4,
                "t = {t}"
            );
        }
    }

    #[test]
    fn exponential_decay_matches_closed_form() {
        let rate = 0.7;
        let g = grid(10.0, 101);
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -rate * y[0];
        let sol = solve_on_grid(&mut rhs, &[3.0], &g, Tolerance::default()).unwrap();
        for (k, t) in g.iter().enumerate() {
            let exact = 3.0 * (-rate * t).exp();
            assert!((sol[0][k] - exact).abs() < 1e-6 * 3.0, "t = {t}");
        }
    }

    #[test]
    fn forced_linear_ode_matches_closed_form() {
        // dy/dt = -y + t, y(0) = 0  =>  y = t - 1 + e^{-t}; the forcing is read per interval.
        let g = grid(5.0, 51);
        let mut rhs = |_: usize, t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -y[0] + t;
        let sol = solve_on_grid(&mut rhs, &[0.0], &g, Tolerance::default()).unwrap();
        for (k, t) in g.iter().enumerate() {
            assert!((sol[0][k] - (t - 1.0 + (-t).exp())).abs() < 1e-6);
        }
    }

    #[test]
    fn blow_up_is_reported_as_divergence() {
        // dy/dt = y², y(0) = 1 explodes at t = 1.
        let g = grid(2.0, 21);
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0];
        let err = solve_on_grid(&mut rhs, &[1.0], &g, Tolerance::default()).unwrap_err();
        assert!(matches!(
            err,
            SolveError::Diverged { .. } | SolveError::StepUnderflow { .. }
        ));
    }
}
