//! Adaptive Dormand–Prince 5(4) integration, reported on a fixed output grid.
//!
//! With a forcing (interpolated linearly from a sampled excitation) the solver steps interval
//! by interval between grid points, so the right-hand side is smooth inside every step it
//! takes; without one, it steps freely and reads the grid from Dormand–Prince's continuous
//! extension (`Stepping`).

/// Why an integration was abandoned.
#[derive(Debug, Clone, PartialEq)]
pub enum SolveError {
    /// A state became NaN/inf or left `±bound`.
    Diverged { t: f64 },
    /// The step size fell below a representable fraction of the interval (stiff or singular).
    StepUnderflow { t: f64 },
    /// More accepted+rejected steps than the budget allows (see [`Tolerance`]).
    TooManySteps,
}

#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
    /// The most steps in all.
    pub max_steps: usize,
    /// The most steps per output interval, on average so far: by interval k an integration
    /// may have taken `max_steps_per_interval · (k + 1 + BURST_INTERVALS)` steps. Dynamics
    /// that need more are far faster than the grid can show, and checking as it goes stops
    /// such a candidate after a few hundred steps instead of at `max_steps` (where rejected
    /// candidates used to spend three quarters of ODE generation time).
    pub max_steps_per_interval: usize,
    /// States beyond ±bound count as divergence.
    pub bound: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rtol: 1e-6,
            atol: 1e-9,
            max_steps: 200_000,
            max_steps_per_interval: 64,
            bound: 1e6,
        }
    }
}

/// Intervals' worth of budget a short burst of fast dynamics may borrow ahead.
const BURST_INTERVALS: usize = 8;

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

/// Coefficients of the continuous extension of order 4 (Hairer, Nørsett and Wanner, as in
/// their `dopri5`), applied to k1, k3, k4, k5, k6 and k7.
const DENSE: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// `rhs(interval, t, y, dy)` writes dy/dt into `dy`.
pub type RightHandSide<'a> = dyn FnMut(usize, f64, &[f64], &mut [f64]) + 'a;

/// How steps relate to the output grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepping {
    /// Every grid point ends a step, so a right-hand side that is only smooth between grid
    /// points (a piecewise-linear forcing) is smooth inside every step.
    EveryGridPoint,
    /// Steps ignore the grid and the states at grid points are read from the continuous
    /// extension: for smooth right-hand sides, where an easy problem then needs far fewer
    /// steps than grid points.
    Dense,
}

/// The state of one integration: the current point, the stages of the last step, and the
/// step budget.
struct Integrator<'r, 'a> {
    rhs: &'r mut RightHandSide<'a>,
    tol: Tolerance,
    t: f64,
    y: Vec<f64>,
    /// k[0] = f(t, y); after a step attempt, k[1..7] are its stages (k[6] at the new point).
    k: Vec<Vec<f64>>,
    y_new: Vec<f64>,
    h: f64,
    steps: usize,
}

impl Integrator<'_, '_> {
    /// Attempts one step of at most `h_max` from `t` (right-hand side piece `interval`);
    /// returns the step taken, or `None` if it was rejected (with a smaller next `h`).
    fn attempt(
        &mut self,
        interval: usize,
        h_max: f64,
        min_step: f64,
        budget: usize,
    ) -> Result<Option<f64>, SolveError> {
        let n = self.y.len();
        let h = self.h.min(h_max).max(0.0);
        if h <= min_step {
            return Err(SolveError::StepUnderflow { t: self.t });
        }
        self.steps += 1;
        if self.steps > budget {
            return Err(SolveError::TooManySteps);
        }
        let mut stage = std::mem::take(&mut self.y_new);
        for s in 1..7 {
            for i in 0..n {
                let mut acc = self.y[i];
                for (j, kj) in self.k.iter().enumerate().take(s) {
                    acc += h * A[s][j] * kj[i];
                }
                stage[i] = acc;
            }
            let (_, rest) = self.k.split_at_mut(s);
            (self.rhs)(interval, self.t + C[s] * h, &stage, &mut rest[0]);
        }
        // The last stage was evaluated at the 5th-order solution.
        self.y_new = stage;
        let mut err_sq = 0.0;
        for i in 0..n {
            let mut e = 0.0;
            for s in 0..7 {
                e += (B5[s] - B4[s]) * self.k[s][i];
            }
            let scale = self.tol.atol + self.tol.rtol * self.y[i].abs().max(self.y_new[i].abs());
            err_sq += (h * e / scale).powi(2);
        }
        let err = (err_sq / n.max(1) as f64).sqrt();
        if !err.is_finite() {
            self.h = h * 0.2;
            return Ok(None);
        }
        let factor = if err == 0.0 {
            5.0
        } else {
            // libm's pow, as the right-hand sides' functions (UnaryOp::apply): the same on
            // every machine, so the same steps are taken.
            (0.9 * libm::pow(err, -0.2)).clamp(0.2, 5.0)
        };
        self.h = h * factor;
        if err > 1.0 {
            return Ok(None);
        }
        if self
            .y_new
            .iter()
            .any(|v| !v.is_finite() || v.abs() > self.tol.bound)
        {
            return Err(SolveError::Diverged { t: self.t + h });
        }
        Ok(Some(h))
    }

    /// The state at `t + theta·h` within the step just taken (before `advance`).
    fn dense(&self, h: f64, theta: f64, out: &mut [f64]) {
        let k = &self.k;
        for (i, o) in out.iter_mut().enumerate() {
            let diff = self.y_new[i] - self.y[i];
            let bspl = h * k[0][i] - diff;
            let last = diff - h * k[6][i] - bspl;
            let tail: f64 = DENSE.iter().zip(k).map(|(d, ks)| d * ks[i]).sum::<f64>() * h;
            let theta1 = 1.0 - theta;
            *o = self.y[i] + theta * (diff + theta1 * (bspl + theta * (last + theta1 * tail)));
        }
    }

    /// Moves to the end of the step just taken.
    fn advance(&mut self, h: f64) {
        self.t += h;
        std::mem::swap(&mut self.y, &mut self.y_new);
        let (first, last) = self.k.split_at_mut(6);
        first[0].copy_from_slice(&last[0]); // first same as last
    }
}

/// Integrates `dy/dt = rhs(interval, t, y)` from `y0` at `grid[0]` and returns the states at
/// every grid point as `[state][k]`. `interval` is the index k with t in [grid[k], grid[k+1]].
pub fn solve_on_grid(
    rhs: &mut RightHandSide,
    y0: &[f64],
    grid: &[f64],
    tol: Tolerance,
    stepping: Stepping,
) -> Result<Vec<Vec<f64>>, SolveError> {
    let n = y0.len();
    let mut out: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut v = Vec::with_capacity(grid.len());
            v.push(y0[i]);
            v
        })
        .collect();
    let Some(&t_last) = grid.last() else {
        return Ok(out);
    };
    let mut k = vec![vec![0.0; n]; 7];
    rhs(0, grid[0], y0, &mut k[0]);
    let mut solver = Integrator {
        rhs,
        tol,
        t: grid[0],
        y: y0.to_vec(),
        k,
        y_new: vec![0.0; n],
        h: grid.get(1).map(|g| (g - grid[0]) / 4.0).unwrap_or(0.0),
        steps: 0,
    };
    let budget = |done: usize| {
        tol.max_steps.min(
            tol.max_steps_per_interval
                .saturating_mul(done + 1 + BURST_INTERVALS),
        )
    };
    let intervals = grid.len() - 1;
    match stepping {
        Stepping::EveryGridPoint => {
            for interval in 0..intervals {
                let t_end = grid[interval + 1];
                let min_step = (t_end - grid[interval]) * 1e-12;
                if interval > 0 {
                    (solver.rhs)(interval, solver.t, &solver.y, &mut solver.k[0]);
                }
                while solver.t < t_end {
                    let h_max = t_end - solver.t;
                    if let Some(h) = solver.attempt(interval, h_max, min_step, budget(interval))? {
                        solver.advance(h);
                        if h >= h_max {
                            solver.t = t_end; // no rounding drift past the grid point
                        }
                    }
                }
                for (o, v) in out.iter_mut().zip(&solver.y) {
                    o.push(*v);
                }
            }
        }
        Stepping::Dense => {
            let min_step = (t_last - grid[0]) / intervals.max(1) as f64 * 1e-12;
            let mut next = 1; // the next grid point to report
            let mut point = vec![0.0; n];
            while next <= intervals {
                let h_max = t_last - solver.t;
                let Some(h) = solver.attempt(next - 1, h_max, min_step, budget(next - 1))? else {
                    continue;
                };
                let t_end = if h >= h_max { t_last } else { solver.t + h };
                while next <= intervals && grid[next] <= t_end {
                    let theta = ((grid[next] - solver.t) / h).clamp(0.0, 1.0);
                    solver.dense(h, theta, &mut point);
                    for (o, v) in out.iter_mut().zip(&point) {
                        o.push(*v);
                    }
                    next += 1;
                }
                solver.advance(h);
            }
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
        for (points, stepping) in [
            (257, Stepping::EveryGridPoint),
            (257, Stepping::Dense),
            // Far more grid points than steps: nearly every point is interpolated.
            (4001, Stepping::Dense),
        ] {
            let g = grid(20.0, points);
            let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| {
                dy[0] = y[1];
                dy[1] = -omega * omega * y[0];
            };
            let sol =
                solve_on_grid(&mut rhs, &[1.0, 0.0], &g, Tolerance::default(), stepping).unwrap();
            assert_eq!(sol[0].len(), points);
            for (k, t) in g.iter().enumerate() {
                assert!(
                    (sol[0][k] - (omega * t).cos()).abs() < 1e-5,
                    "{stepping:?} t = {t}"
                );
                assert!(
                    (sol[1][k] + omega * (omega * t).sin()).abs() < 1e-4,
                    "{stepping:?} t = {t}"
                );
            }
        }
    }

    #[test]
    fn dense_stepping_takes_fewer_steps_than_grid_points() {
        let g = grid(10.0, 256);
        let count = |stepping: Stepping| {
            let mut calls = 0usize;
            let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| {
                calls += 1;
                dy[0] = -0.3 * y[0];
            };
            solve_on_grid(&mut rhs, &[1.0], &g, Tolerance::default(), stepping).unwrap();
            calls
        };
        let (every, dense) = (count(Stepping::EveryGridPoint), count(Stepping::Dense));
        assert!(every >= 6 * 255, "{every}");
        assert!(
            dense * 5 < every,
            "dense {dense} vs every grid point {every}"
        );
    }

    #[test]
    fn a_runaway_integration_stops_early() {
        // Fast oscillation: about 2,000 periods over a 256-point grid.
        let g = grid(10.0, 256);
        let mut calls = 0usize;
        let omega = 1300.0;
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| {
            calls += 1;
            dy[0] = y[1];
            dy[1] = -omega * omega * y[0];
        };
        let tol = Tolerance::default();
        let err = solve_on_grid(&mut rhs, &[1.0, 0.0], &g, tol, Stepping::Dense).unwrap_err();
        assert_eq!(err, SolveError::TooManySteps);
        // Stopped within the first few intervals' budget, not at max_steps.
        assert!(
            calls < 6 * tol.max_steps / 100,
            "{calls} right-hand side calls"
        );
    }

    #[test]
    fn exponential_decay_matches_closed_form() {
        let rate = 0.7;
        let g = grid(10.0, 101);
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -rate * y[0];
        let sol = solve_on_grid(
            &mut rhs,
            &[3.0],
            &g,
            Tolerance::default(),
            Stepping::EveryGridPoint,
        )
        .unwrap();
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
        let sol = solve_on_grid(
            &mut rhs,
            &[0.0],
            &g,
            Tolerance::default(),
            Stepping::EveryGridPoint,
        )
        .unwrap();
        for (k, t) in g.iter().enumerate() {
            assert!((sol[0][k] - (t - 1.0 + (-t).exp())).abs() < 1e-6);
        }
    }

    #[test]
    fn blow_up_is_reported_as_divergence() {
        // dy/dt = y², y(0) = 1 explodes at t = 1.
        let g = grid(2.0, 21);
        let mut rhs = |_: usize, _t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0];
        let err = solve_on_grid(
            &mut rhs,
            &[1.0],
            &g,
            Tolerance::default(),
            Stepping::EveryGridPoint,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            SolveError::Diverged { .. } | SolveError::StepUnderflow { .. }
        ));
    }
}
