//! Random symbolic right-hand sides dy_j/dt = f_j(y, x(t), t) − λ_j·y_j. The trees come from
//! the same sampler as explicit expressions; the linear damping term keeps a useful share of
//! draws bounded (the rest are rejected by validation).

use super::{three_digits, OdeProblem};
use crate::checks::{check_count, check_prob, check_range};
use crate::error::Result;
use crate::rng::{uniform, SampleRng};
use crate::symbolic::{Expr, TreeSampler, Var};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RandomRhsConfig {
    pub max_states: usize,
    /// Number of forcing inputs ~ U{0..max_inputs}.
    pub max_inputs: usize,
    /// Probability that t appears explicitly in the right-hand side.
    pub time_prob: f64,
    pub damping: [f64; 2],
    pub t_end: [f64; 2],
    pub initial_state: [f64; 2],
}

impl Default for RandomRhsConfig {
    fn default() -> Self {
        RandomRhsConfig {
            max_states: 3,
            max_inputs: 2,
            time_prob: 0.3,
            damping: [0.2, 2.0],
            t_end: [5.0, 20.0],
            initial_state: [-1.0, 1.0],
        }
    }
}

impl RandomRhsConfig {
    pub fn validate(&self) -> Result<()> {
        check_count("ode.random.max_states", self.max_states, 1, 16)?;
        check_count("ode.random.max_inputs", self.max_inputs, 0, 6)?;
        check_prob("ode.random.time_prob", self.time_prob)?;
        check_range("ode.random.damping", self.damping[0], self.damping[1], 0.0)?;
        check_range("ode.random.t_end", self.t_end[0], self.t_end[1], 1e-9)?;
        check_range(
            "ode.random.initial_state",
            self.initial_state[0],
            self.initial_state[1],
            f64::MIN,
        )
    }
}

fn rounded(rng: &mut SampleRng, r: [f64; 2]) -> f64 {
    three_digits(uniform(rng, r))
}

pub fn build(cfg: &RandomRhsConfig, trees: &TreeSampler, rng: &mut SampleRng) -> OdeProblem {
    let n_states = rng.random_range(1..=cfg.max_states);
    let n_inputs = rng.random_range(0..=cfg.max_inputs);
    let mut vars: Vec<Var> = (0..n_states).map(Var::State).collect();
    vars.extend((0..n_inputs).map(Var::Input));
    if rng.random_bool(cfg.time_prob) {
        vars.push(Var::Time);
    }
    let rhs = (0..n_states)
        .map(|j| {
            let f = Expr::from(&trees.sample_over(rng, &vars));
            let damping = rounded(rng, cfg.damping);
            Expr::minus(f, Expr::times(Expr::constant(damping), Expr::state(j)))
        })
        .collect();
    OdeProblem {
        rhs,
        y0: (0..n_states)
            .map(|_| rounded(rng, cfg.initial_state))
            .collect(),
        n_inputs,
        t_end: rounded(rng, cfg.t_end),
    }
}
