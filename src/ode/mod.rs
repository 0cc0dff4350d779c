//! ODE-driven series: dy/dt = f(y, x(t), t), from random symbolic right-hand sides or from a
//! catalogue of classic systems, integrated with an adaptive solver and sampled on the output
//! grid t_k = t_end·k/(L−1). A sample's outputs are the states y_j; its symbols are the
//! right-hand sides f_j; its inputs are the forcing channels x_i (none for autonomous systems).

mod catalogue;
mod random;
mod solver;

pub use catalogue::System;
pub use random::RandomRhsConfig;
pub use solver::{solve_on_grid, SolveError, Stepping, Tolerance};

use crate::checks::{check_count, check_prob};
use crate::error::{Error, Result};
use crate::rng::SampleRng;
use crate::symbolic::{Expr, PointEnv, Program, TreeSampler};
use rand::Rng;
use rand_distr::{weighted::WeightedIndex, Distribution};
use serde::{Deserialize, Serialize};

/// `v` rounded to three significant digits through its decimal text, so the value printed in a
/// symbol parses back to exactly the value integrated.
pub(crate) fn three_digits(v: f64) -> f64 {
    format!("{v:.2e}").parse().expect("formatted float parses")
}

/// One initial-value problem.
#[derive(Clone, Debug)]
pub struct OdeProblem {
    /// dy_j/dt = rhs[j]
    pub rhs: Vec<Expr>,
    pub y0: Vec<f64>,
    /// Forcing channels x0.. the right-hand sides read.
    pub n_inputs: usize,
    pub t_end: f64,
}

impl OdeProblem {
    /// Integrates on `len` grid points; `forcing[i]` holds x_i on the grid and is interpolated
    /// linearly in between.
    pub fn solve(
        &self,
        forcing: &[Vec<f64>],
        len: usize,
        tol: Tolerance,
    ) -> Result<Vec<Vec<f64>>, SolveError> {
        let dt = self.t_end / (len.max(2) - 1) as f64;
        let grid: Vec<f64> = (0..len).map(|k| k as f64 * dt).collect();
        let mut x_now = vec![0.0; forcing.len()];
        let programs: Vec<Program> = self.rhs.iter().map(Program::of_expr).collect();
        let mut stack = Vec::new();
        let mut rhs = |interval: usize, t: f64, y: &[f64], dy: &mut [f64]| {
            let frac = ((t - grid[interval]) / dt).clamp(0.0, 1.0);
            for (x, series) in x_now.iter_mut().zip(forcing) {
                let next = series
                    .get(interval + 1)
                    .copied()
                    .unwrap_or(series[interval]);
                *x = series[interval] + frac * (next - series[interval]);
            }
            let env = PointEnv {
                inputs: &x_now,
                states: y,
                t,
            };
            for (d, f) in dy.iter_mut().zip(&programs) {
                *d = f.eval(&env, &mut stack);
            }
        };
        // A forcing is only smooth between grid points; without one the grid need not bind.
        let stepping = if forcing.is_empty() {
            Stepping::Dense
        } else {
            Stepping::EveryGridPoint
        };
        solve_on_grid(&mut rhs, &self.y0, &grid, tol, stepping)
    }
}

/// Relative weight of each catalogue system.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SystemWeights {
    pub damped_oscillator: f64,
    pub van_der_pol: f64,
    pub lotka_volterra: f64,
    pub lorenz: f64,
    pub duffing: f64,
    pub sir: f64,
}

impl Default for SystemWeights {
    fn default() -> Self {
        SystemWeights {
            damped_oscillator: 1.0,
            van_der_pol: 1.0,
            lotka_volterra: 1.0,
            lorenz: 1.0,
            duffing: 1.0,
            sir: 1.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OdeConfig {
    /// Probability of a catalogue system rather than a random right-hand side.
    pub catalogue_prob: f64,
    pub systems: SystemWeights,
    pub random: RandomRhsConfig,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    /// See [`Tolerance::max_steps_per_interval`].
    pub max_steps_per_interval: usize,
}

impl Default for OdeConfig {
    fn default() -> Self {
        let tol = Tolerance::default();
        OdeConfig {
            catalogue_prob: 0.5,
            systems: SystemWeights::default(),
            random: RandomRhsConfig::default(),
            rtol: tol.rtol,
            atol: tol.atol,
            max_steps: tol.max_steps,
            max_steps_per_interval: tol.max_steps_per_interval,
        }
    }
}

impl OdeConfig {
    pub fn validate(&self) -> Result<()> {
        check_prob("ode.catalogue_prob", self.catalogue_prob)?;
        let w = self.system_weights();
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
            return Err(Error::Config(
                "ode.systems weights must be >= 0 with a positive sum".into(),
            ));
        }
        if !(self.rtol.is_finite() && self.rtol > 0.0 && self.atol.is_finite() && self.atol > 0.0) {
            return Err(Error::Config(
                "ode: rtol and atol must be finite and > 0".into(),
            ));
        }
        check_count("ode.max_steps", self.max_steps, 1, 10_000_000)?;
        check_count(
            "ode.max_steps_per_interval",
            self.max_steps_per_interval,
            1,
            100_000,
        )?;
        self.random.validate()
    }

    fn system_weights(&self) -> [f64; 6] {
        let s = &self.systems;
        [
            s.damped_oscillator,
            s.van_der_pol,
            s.lotka_volterra,
            s.lorenz,
            s.duffing,
            s.sir,
        ]
    }
}

/// Draws ODE problems according to an [`OdeConfig`].
pub struct OdeSampler {
    cfg: OdeConfig,
    systems: WeightedIndex<f64>,
}

impl OdeSampler {
    pub fn new(cfg: &OdeConfig) -> Result<Self> {
        cfg.validate()?;
        let systems =
            WeightedIndex::new(cfg.system_weights()).map_err(|e| Error::Config(e.to_string()))?;
        Ok(OdeSampler {
            cfg: cfg.clone(),
            systems,
        })
    }

    /// A problem and its `ode_system` code (0 = random right-hand side).
    pub fn draw(&self, rng: &mut SampleRng, trees: &TreeSampler) -> (OdeProblem, u8) {
        if rng.random_bool(self.cfg.catalogue_prob) {
            let system = System::ALL[self.systems.sample(rng)];
            (catalogue::build(system, rng), system.code())
        } else {
            (random::build(&self.cfg.random, trees, rng), 0)
        }
    }

    pub fn tolerance(&self, bound: f64) -> Tolerance {
        Tolerance {
            rtol: self.cfg.rtol,
            atol: self.cfg.atol,
            max_steps: self.cfg.max_steps,
            max_steps_per_interval: self.cfg.max_steps_per_interval,
            bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn catalogue_systems_integrate_and_match_their_symbols() {
        // Central differences of the stored trajectory must agree with the printed right-hand
        // side re-evaluated by meval: the symbol describes the data.
        for (i, system) in System::ALL.iter().enumerate() {
            let mut rng = sample_rng(21, i as u64);
            let p = catalogue::build(*system, &mut rng);
            let len = 8001;
            let forcing: Vec<Vec<f64>> = (0..p.n_inputs)
                .map(|_| (0..len).map(|k| (k as f64 * 0.01).sin()).collect())
                .collect();
            let sol = p
                .solve(&forcing, len, Tolerance::default())
                .expect("catalogue system solves");
            let dt = p.t_end / (len - 1) as f64;
            let exprs: Vec<meval::Expr> = p
                .rhs
                .iter()
                .map(|f| f.to_string().parse().unwrap())
                .collect();
            for k in (10..len - 10).step_by(397) {
                let mut ctx = meval::Context::new();
                for (j, s) in sol.iter().enumerate() {
                    ctx.var(format!("y{j}"), s[k]);
                }
                for (i, x) in forcing.iter().enumerate() {
                    ctx.var(format!("x{i}"), x[k]);
                }
                ctx.var("t", k as f64 * dt);
                for (j, e) in exprs.iter().enumerate() {
                    let slope = (sol[j][k + 1] - sol[j][k - 1]) / (2.0 * dt);
                    let want = e.eval_with_context(&ctx).unwrap();
                    let scale = want.abs().max(1.0);
                    assert!(
                        (slope - want).abs() < 2e-2 * scale,
                        "{system:?} y{j} at {k}: {slope} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn sir_conserves_population() {
        let mut rng = sample_rng(22, 0);
        let p = catalogue::build(System::Sir, &mut rng);
        let sol = p.solve(&[], 256, Tolerance::default()).unwrap();
        for ((s, i), r) in sol[0].iter().zip(&sol[1]).zip(&sol[2]) {
            let total = s + i + r;
            assert!((total - 1.0).abs() < 1e-6, "{total}");
        }
    }
}
