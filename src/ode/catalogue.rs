//! Classic dynamical systems with randomised parameters and initial states. Each right-hand
//! side is an expression tree, so the stored symbol is exactly the system that was integrated.
//! Parameters are rounded to three significant digits so the symbols stay readable.

use super::{three_digits, OdeProblem};
use crate::rng::{uniform, SampleRng};
use crate::symbolic::{Expr, UnaryOp};
use serde::{Deserialize, Serialize};

/// The catalogue, in the order of their `ode_system` codes (1-based; 0 is a random system).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    DampedOscillator,
    VanDerPol,
    LotkaVolterra,
    Lorenz,
    Duffing,
    Sir,
}

impl System {
    pub const ALL: [System; 6] = [
        System::DampedOscillator,
        System::VanDerPol,
        System::LotkaVolterra,
        System::Lorenz,
        System::Duffing,
        System::Sir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            System::DampedOscillator => "damped_oscillator",
            System::VanDerPol => "van_der_pol",
            System::LotkaVolterra => "lotka_volterra",
            System::Lorenz => "lorenz",
            System::Duffing => "duffing",
            System::Sir => "sir",
        }
    }

    pub fn code(self) -> u8 {
        System::ALL.iter().position(|s| *s == self).unwrap() as u8 + 1
    }
}

/// A uniform draw, rounded to three significant digits.
fn param(rng: &mut SampleRng, lo: f64, hi: f64) -> f64 {
    three_digits(uniform(rng, [lo, hi]))
}

fn c(v: f64) -> Expr {
    Expr::constant(v)
}

fn y(j: usize) -> Expr {
    Expr::state(j)
}

/// The problem for one draw of `system`. Systems that take a forcing read it as `x0`.
pub fn build(system: System, rng: &mut SampleRng) -> OdeProblem {
    match system {
        System::DampedOscillator => {
            // y0'' + 2ζω y0' + ω² y0 = A·x0(t)
            let omega = param(rng, 0.5, 3.0);
            let zeta = param(rng, 0.01, 0.5);
            let amp = param(rng, 0.2, 2.0);
            let two_zeta_omega = three_digits(2.0 * zeta * omega);
            let omega_sq = three_digits(omega * omega);
            OdeProblem {
                rhs: vec![
                    y(1),
                    Expr::plus(
                        Expr::minus(
                            Expr::times(c(-two_zeta_omega), y(1)),
                            Expr::times(c(omega_sq), y(0)),
                        ),
                        Expr::times(c(amp), Expr::input(0)),
                    ),
                ],
                y0: vec![param(rng, -1.0, 1.0), param(rng, -1.0, 1.0)],
                n_inputs: 1,
                t_end: param(rng, 10.0, 40.0),
            }
        }
        System::VanDerPol => {
            let mu = param(rng, 0.1, 4.0);
            OdeProblem {
                rhs: vec![
                    y(1),
                    Expr::minus(
                        Expr::times(
                            Expr::times(
                                c(mu),
                                Expr::minus(c(1.0), Expr::unary(UnaryOp::Pow2, y(0))),
                            ),
                            y(1),
                        ),
                        y(0),
                    ),
                ],
                y0: vec![param(rng, -2.0, 2.0), param(rng, -2.0, 2.0)],
                n_inputs: 0,
                t_end: param(rng, 20.0, 60.0),
            }
        }
        System::LotkaVolterra => {
            let (alpha, beta) = (param(rng, 0.5, 1.5), param(rng, 0.5, 1.5));
            let (delta, gamma) = (param(rng, 0.5, 1.5), param(rng, 0.5, 1.5));
            OdeProblem {
                rhs: vec![
                    Expr::minus(
                        Expr::times(c(alpha), y(0)),
                        Expr::times(Expr::times(c(beta), y(0)), y(1)),
                    ),
                    Expr::minus(
                        Expr::times(Expr::times(c(delta), y(0)), y(1)),
                        Expr::times(c(gamma), y(1)),
                    ),
                ],
                y0: vec![param(rng, 0.5, 2.0), param(rng, 0.5, 2.0)],
                n_inputs: 0,
                t_end: param(rng, 10.0, 40.0),
            }
        }
        System::Lorenz => {
            let sigma = param(rng, 8.0, 12.0);
            let rho = param(rng, 20.0, 35.0);
            let beta = param(rng, 2.0, 3.0);
            OdeProblem {
                rhs: vec![
                    Expr::times(c(sigma), Expr::minus(y(1), y(0))),
                    Expr::minus(Expr::times(y(0), Expr::minus(c(rho), y(2))), y(1)),
                    Expr::minus(Expr::times(y(0), y(1)), Expr::times(c(beta), y(2))),
                ],
                y0: vec![
                    param(rng, -10.0, 10.0),
                    param(rng, -10.0, 10.0),
                    param(rng, 5.0, 30.0),
                ],
                n_inputs: 0,
                t_end: param(rng, 5.0, 20.0),
            }
        }
        System::Duffing => {
            // y0'' + δ y0' + α y0 + β y0³ = γ cos(ω t)
            let delta = param(rng, 0.1, 0.4);
            let alpha = param(rng, -1.0, 1.0);
            let beta = param(rng, 0.5, 1.5);
            let gamma = param(rng, 0.2, 0.6);
            let omega = param(rng, 0.8, 1.4);
            OdeProblem {
                rhs: vec![
                    y(1),
                    Expr::plus(
                        Expr::minus(
                            Expr::minus(Expr::times(c(-delta), y(1)), Expr::times(c(alpha), y(0))),
                            Expr::times(c(beta), Expr::unary(UnaryOp::Pow3, y(0))),
                        ),
                        Expr::times(
                            c(gamma),
                            Expr::unary(UnaryOp::Cos, Expr::times(c(omega), Expr::time())),
                        ),
                    ),
                ],
                y0: vec![param(rng, -1.0, 1.0), param(rng, -1.0, 1.0)],
                n_inputs: 0,
                t_end: param(rng, 30.0, 100.0),
            }
        }
        System::Sir => {
            // Population fractions; S + I + R = 1 is conserved.
            let beta = param(rng, 0.2, 1.0);
            let gamma = param(rng, 0.05, 0.3);
            let infected = param(rng, 0.001, 0.05);
            let infection = Expr::times(Expr::times(c(beta), y(0)), y(1));
            OdeProblem {
                rhs: vec![
                    Expr::times(c(-1.0), infection.clone()),
                    Expr::minus(infection, Expr::times(c(gamma), y(1))),
                    Expr::times(c(gamma), y(1)),
                ],
                y0: vec![1.0 - infected, infected, 0.0],
                n_inputs: 0,
                t_end: param(rng, 50.0, 200.0),
            }
        }
    }
}
