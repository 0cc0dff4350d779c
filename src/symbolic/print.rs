//! Infix printing. The output is fully parenthesised and uses only syntax and functions the
//! `meval` crate knows, so the stored symbol can be re-evaluated by a standard parser.

use super::{Expr, UnaryOp, Var};
use std::fmt;

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Input(i) => write!(f, "x{i}"),
            Var::State(j) => write!(f, "y{j}"),
            Var::Time => write!(f, "t"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `{}` on f64 prints the shortest decimal that parses back to the same value,
            // without exponent notation.
            Expr::Const(c) if *c < 0.0 => write!(f, "(-{})", -c),
            Expr::Const(c) => write!(f, "{c}"),
            Expr::Var(v) => write!(f, "{v}"),
            Expr::Unary(op, a) => match op {
                UnaryOp::Abs => write!(f, "abs({a})"),
                UnaryOp::Inv => write!(f, "(1 / {a})"),
                UnaryOp::Sqrt => write!(f, "sqrt(abs({a}))"),
                UnaryOp::Log => write!(f, "ln(abs({a}))"),
                UnaryOp::Exp => write!(f, "exp({a})"),
                UnaryOp::Sin => write!(f, "sin({a})"),
                UnaryOp::Cos => write!(f, "cos({a})"),
                UnaryOp::Tan => write!(f, "tan({a})"),
                UnaryOp::Atan => write!(f, "atan({a})"),
                UnaryOp::Pow2 => write!(f, "({a})^2"),
                UnaryOp::Pow3 => write!(f, "({a})^3"),
            },
            Expr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::BinaryOp;
    use super::*;

    #[test]
    fn prints_meval_syntax() {
        let e = Expr::plus(
            Expr::constant(-0.25),
            Expr::times(
                Expr::constant(3.0),
                Expr::unary(
                    UnaryOp::Sqrt,
                    Expr::binary(BinaryOp::Div, Expr::input(1), Expr::state(0)),
                ),
            ),
        );
        assert_eq!(e.to_string(), "((-0.25) + (3 * sqrt(abs((x1 / y0)))))");
        assert_eq!(
            Expr::unary(UnaryOp::Pow3, Expr::time()).to_string(),
            "(t)^3"
        );
    }
}
