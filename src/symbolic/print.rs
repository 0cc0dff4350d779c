//! Infix printing. The output is fully parenthesised and uses only syntax and functions the
//! `meval` crate knows, so the stored symbol can be re-evaluated by a standard parser.

use super::flat::{FlatTree, Node, NodeId};
use super::{BinaryOp, Expr, UnaryOp, Var};
use std::fmt;

impl UnaryOp {
    /// What is printed before and after the argument.
    fn printed(self) -> (&'static str, &'static str) {
        match self {
            UnaryOp::Abs => ("abs(", ")"),
            UnaryOp::Inv => ("(1 / ", ")"),
            UnaryOp::Sqrt => ("sqrt(abs(", "))"),
            UnaryOp::Log => ("ln(abs(", "))"),
            UnaryOp::Exp => ("exp(", ")"),
            UnaryOp::Sin => ("sin(", ")"),
            UnaryOp::Cos => ("cos(", ")"),
            UnaryOp::Tan => ("tan(", ")"),
            UnaryOp::Atan => ("atan(", ")"),
            UnaryOp::Pow2 => ("(", ")^2"),
            UnaryOp::Pow3 => ("(", ")^3"),
        }
    }

    /// The part of the printed form that only this operator writes (or whose other
    /// writers' markers end with it: see `operator_counts`).
    fn marker(self) -> &'static str {
        match self.printed() {
            ("(", close) => close,
            (open, _) => open,
        }
    }
}

/// How often each operator occurs in a printed expression, by name, read back from the
/// printed form above. A marker can end another operator's marker (`abs(` ends
/// `sqrt(abs(`, ` / ` ends `(1 / `, `tan(` ends `atan(`); those occurrences are subtracted.
pub fn operator_counts(symbol: &str) -> Vec<(&'static str, u64)> {
    let markers: Vec<(&'static str, String)> = BinaryOp::ALL
        .iter()
        .map(|op| (op.name(), format!(" {} ", op.symbol())))
        .chain(
            UnaryOp::ALL
                .iter()
                .map(|op| (op.name(), op.marker().to_string())),
        )
        .collect();
    let count = |m: &str| symbol.matches(m).count() as u64;
    markers
        .iter()
        .map(|(name, marker)| {
            let inside_others: u64 = markers
                .iter()
                .filter(|(_, other)| other != marker && other.ends_with(marker.as_str()))
                .map(|(_, other)| count(other))
                .sum();
            (*name, count(marker) - inside_others)
        })
        .collect()
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Input(i) => write!(f, "x{i}"),
            Var::State(j) => write!(f, "y{j}"),
            Var::Time => write!(f, "t"),
        }
    }
}

/// Kept trees are printed from their flat form, without building the boxed tree.
impl fmt::Display for FlatTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(f, self, self.root())
    }
}

/// One printer for both forms: a boxed tree is printed through a flat copy.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FlatTree::from(self).fmt(f)
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, tree: &FlatTree, id: NodeId) -> fmt::Result {
    match tree.node(id) {
        // `{}` on f64 prints the shortest decimal that parses back to the same value,
        // without exponent notation.
        Node::Const(c) if c < 0.0 => write!(f, "(-{})", -c),
        Node::Const(c) => write!(f, "{c}"),
        Node::Var(v) => write!(f, "{v}"),
        Node::Unary(op, a) => {
            let (open, close) = op.printed();
            f.write_str(open)?;
            write_node(f, tree, a)?;
            f.write_str(close)
        }
        Node::Binary(op, a, b) => {
            f.write_str("(")?;
            write_node(f, tree, a)?;
            write!(f, " {} ", op.symbol())?;
            write_node(f, tree, b)?;
            f.write_str(")")
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
