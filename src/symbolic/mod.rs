//! Symbolic expressions: the tree, its operators, evaluation, printing and random sampling.
//!
//! One tree serves both explicit samples (`y = f(x)`) and ODE right-hand sides
//! (`dy/dt = f(y, x, t)`), so what is printed as a sample's symbol is exactly what produced
//! its numbers. It comes in two forms that convert exactly into each other: the sampler
//! draws, the evaluator compiles and the printer writes a [`FlatTree`] (nodes in one vector);
//! the ODE systems and hand-built trees use the boxed [`Expr`].

mod eval;
mod flat;
mod print;
mod sample;
pub mod tokens;

pub use eval::{PointEnv, Program};
pub use flat::FlatTree;
pub use print::operator_counts;
pub use sample::{OperatorConfig, SymbolicConfig, TreeSampler};

use serde::{Deserialize, Serialize};

/// A variable an expression can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// Input channel `x{i}`.
    Input(usize),
    /// ODE state `y{j}`.
    State(usize),
    /// Time `t` (ODE right-hand sides only).
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnaryOp {
    Abs,
    /// `1/a`.
    Inv,
    /// `sqrt(|a|)`: defined everywhere, as in the reference.
    Sqrt,
    /// `ln(|a|)`.
    Log,
    Exp,
    Sin,
    Cos,
    Tan,
    #[serde(rename = "arctan")]
    Atan,
    Pow2,
    Pow3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 11] = [
        UnaryOp::Abs,
        UnaryOp::Inv,
        UnaryOp::Sqrt,
        UnaryOp::Log,
        UnaryOp::Exp,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Atan,
        UnaryOp::Pow2,
        UnaryOp::Pow3,
    ];

    /// The scalar definition. The transcendental functions come from the pure-Rust `libm`
    /// crate, not the platform's maths library: glibc picks its sin, exp, log and pow builds
    /// by CPU feature, those builds now and then differ in the last bit, and an ODE
    /// integration can amplify one such bit into a visibly different trajectory
    /// (`benches/libm_paths.sh`). The same code gives the same bits on every machine, at no
    /// measured cost. Powers are products: IEEE operations, the same everywhere; `meval`'s
    /// `powf` agrees to within an ulp or two, which the symbol round-trip tests allow.
    #[inline]
    pub fn apply(self, a: f64) -> f64 {
        match self {
            UnaryOp::Abs => a.abs(),
            UnaryOp::Inv => 1.0 / a,
            UnaryOp::Sqrt => a.abs().sqrt(),
            UnaryOp::Log => libm::log(a.abs()),
            UnaryOp::Exp => libm::exp(a),
            UnaryOp::Sin => libm::sin(a),
            UnaryOp::Cos => libm::cos(a),
            UnaryOp::Tan => libm::tan(a),
            UnaryOp::Atan => libm::atan(a),
            UnaryOp::Pow2 => a * a,
            UnaryOp::Pow3 => a * a * a,
        }
    }

    /// The name used in presets and in `inspect` reports.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Abs => "abs",
            UnaryOp::Inv => "inv",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Log => "log",
            UnaryOp::Exp => "exp",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Atan => "arctan",
            UnaryOp::Pow2 => "pow2",
            UnaryOp::Pow3 => "pow3",
        }
    }
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

    #[inline]
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }

    /// The infix symbol, as `meval` reads it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(f64),
    Var(Var),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn constant(c: f64) -> Expr {
        Expr::Const(c)
    }
    pub fn input(i: usize) -> Expr {
        Expr::Var(Var::Input(i))
    }
    pub fn state(j: usize) -> Expr {
        Expr::Var(Var::State(j))
    }
    pub fn time() -> Expr {
        Expr::Var(Var::Time)
    }
    pub fn unary(op: UnaryOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }
    pub fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }
    pub fn plus(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Add, a, b)
    }
    pub fn minus(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Sub, a, b)
    }
    pub fn times(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Mul, a, b)
    }

    /// Number of nodes (the prefix length without constant encoding).
    pub fn size(&self) -> usize {
        match self {
            Expr::Const(_) | Expr::Var(_) => 1,
            Expr::Unary(_, a) => 1 + a.size(),
            Expr::Binary(_, a, b) => 1 + a.size() + b.size(),
        }
    }

    /// Calls `f` on every operator in the tree (pre-order).
    pub fn visit_ops(&self, f: &mut impl FnMut(&str)) {
        match self {
            Expr::Const(_) | Expr::Var(_) => {}
            Expr::Unary(op, a) => {
                f(op.name());
                a.visit_ops(f);
            }
            Expr::Binary(op, a, b) => {
                f(op.name());
                a.visit_ops(f);
                b.visit_ops(f);
            }
        }
    }
}
