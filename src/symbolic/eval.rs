//! Evaluation. Whole series are evaluated node by node over buffers (never point by point
//! through a parser); ODE solvers use a flattened program at single time points.

use super::{BinaryOp, Expr, UnaryOp, Var};

/// Evaluates `expr` over series of length `len`; `inputs[i]` is channel `x{i}`.
/// Each node owns its buffer, so no operator can alias or modify a child's values.
pub fn eval_series(expr: &Expr, inputs: &[Vec<f64>], len: usize) -> Vec<f64> {
    match expr {
        Expr::Const(c) => vec![*c; len],
        Expr::Var(Var::Input(i)) => inputs[*i].clone(),
        Expr::Var(Var::Time) => (0..len).map(|k| k as f64).collect(),
        Expr::Var(Var::State(j)) => {
            panic!("eval_series: state variable y{j} has no series; use the ODE solver")
        }
        Expr::Unary(op, a) => {
            let mut v = eval_series(a, inputs, len);
            for x in &mut v {
                *x = op.apply(*x);
            }
            v
        }
        Expr::Binary(op, a, b) => {
            let mut left = eval_series(a, inputs, len);
            let right = eval_series(b, inputs, len);
            for (l, r) in left.iter_mut().zip(&right) {
                *l = op.apply(*l, *r);
            }
            left
        }
    }
}

/// The values of every variable at one instant.
pub struct PointEnv<'a> {
    pub inputs: &'a [f64],
    pub states: &'a [f64],
    pub t: f64,
}

/// One step of a [`PointProgram`].
#[derive(Clone, Copy, Debug)]
enum Step {
    Const(f64),
    Input(usize),
    State(usize),
    Time,
    Unary(UnaryOp),
    Binary(BinaryOp),
}

/// An expression flattened to postfix order for evaluation at single points, as an ODE
/// solver does millions of times per sample: one pass over a flat array and a small value
/// stack, instead of a recursive walk over boxed nodes (which took three quarters of ODE
/// generation time). Each operation is the same as in the tree, in the same order, so the
/// result is bit-identical to evaluating the tree.
#[derive(Clone, Debug)]
pub struct PointProgram {
    steps: Vec<Step>,
    /// The deepest the value stack gets.
    depth: usize,
}

impl PointProgram {
    pub fn new(expr: &Expr) -> PointProgram {
        fn emit(e: &Expr, steps: &mut Vec<Step>, height: usize, depth: &mut usize) {
            *depth = (*depth).max(height + 1);
            match e {
                Expr::Const(c) => steps.push(Step::Const(*c)),
                Expr::Var(Var::Input(i)) => steps.push(Step::Input(*i)),
                Expr::Var(Var::State(j)) => steps.push(Step::State(*j)),
                Expr::Var(Var::Time) => steps.push(Step::Time),
                Expr::Unary(op, a) => {
                    emit(a, steps, height, depth);
                    steps.push(Step::Unary(*op));
                }
                Expr::Binary(op, a, b) => {
                    emit(a, steps, height, depth);
                    emit(b, steps, height + 1, depth);
                    steps.push(Step::Binary(*op));
                }
            }
        }
        let (mut steps, mut depth) = (Vec::new(), 0);
        emit(expr, &mut steps, 0, &mut depth);
        PointProgram { steps, depth }
    }

    /// The value at `env`; `stack` is scratch space, reused between calls.
    pub fn eval(&self, env: &PointEnv, stack: &mut Vec<f64>) -> f64 {
        if stack.len() < self.depth {
            stack.resize(self.depth, 0.0);
        }
        let mut top = 0; // values on the stack
        for step in &self.steps {
            match *step {
                Step::Const(c) => {
                    stack[top] = c;
                    top += 1;
                }
                Step::Input(i) => {
                    stack[top] = env.inputs[i];
                    top += 1;
                }
                Step::State(j) => {
                    stack[top] = env.states[j];
                    top += 1;
                }
                Step::Time => {
                    stack[top] = env.t;
                    top += 1;
                }
                Step::Unary(op) => stack[top - 1] = op.apply(stack[top - 1]),
                Step::Binary(op) => {
                    top -= 1;
                    stack[top - 1] = op.apply(stack[top - 1], stack[top]);
                }
            }
        }
        stack[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_matches_scalar_maths() {
        let xs: Vec<f64> = vec![-2.5, -1.0, -0.3, 0.0, 0.7, 1.0, 3.2];
        let inputs = vec![xs.clone()];
        type Scalar = fn(f64) -> f64;
        let expected: [(UnaryOp, Scalar); 11] = [
            (UnaryOp::Abs, |x| x.abs()),
            (UnaryOp::Inv, |x| 1.0 / x),
            (UnaryOp::Sqrt, |x| x.abs().sqrt()),
            (UnaryOp::Log, |x| x.abs().ln()),
            (UnaryOp::Exp, |x| x.exp()),
            (UnaryOp::Sin, |x| x.sin()),
            (UnaryOp::Cos, |x| x.cos()),
            (UnaryOp::Tan, |x| x.tan()),
            (UnaryOp::Atan, |x| x.atan()),
            (UnaryOp::Pow2, |x| x * x),
            (UnaryOp::Pow3, |x| x * x * x),
        ];
        for (op, f) in expected {
            let got = eval_series(&Expr::unary(op, Expr::input(0)), &inputs, xs.len());
            for (g, x) in got.iter().zip(&xs) {
                let want = f(*x);
                assert!(
                    (g == &want) || (g - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{op:?}({x}) = {g}, want {want}"
                );
            }
        }
        let ys: Vec<f64> = xs.iter().map(|x| x * 0.5 - 1.0).collect();
        let inputs = vec![xs.clone(), ys.clone()];
        type Pair = fn(f64, f64) -> f64;
        let binary: [(BinaryOp, Pair); 4] = [
            (BinaryOp::Add, |a, b| a + b),
            (BinaryOp::Sub, |a, b| a - b),
            (BinaryOp::Mul, |a, b| a * b),
            (BinaryOp::Div, |a, b| a / b),
        ];
        for (op, f) in binary {
            let got = eval_series(
                &Expr::binary(op, Expr::input(0), Expr::input(1)),
                &inputs,
                xs.len(),
            );
            for k in 0..xs.len() {
                assert_eq!(got[k], f(xs[k], ys[k]), "{op:?}");
            }
        }
    }

    #[test]
    fn children_are_not_modified_in_place() {
        // The reference computed (log(x0) add x0) wrongly because log overwrote x0.
        let xs = vec![0.5, 2.0, 4.0];
        let e = Expr::plus(Expr::unary(UnaryOp::Log, Expr::input(0)), Expr::input(0));
        let got = eval_series(&e, std::slice::from_ref(&xs), 3);
        for (g, x) in got.iter().zip(&xs) {
            assert_eq!(*g, x.ln() + x);
        }
    }

    #[test]
    fn deep_programs_match_the_tree() {
        // Right-nested: every value waits on the stack for the next one.
        let xs = vec![0.3, -1.2, 2.5];
        let mut e = Expr::input(0);
        for k in 0..30 {
            let op = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Div][k % 4];
            e = Expr::binary(op, Expr::unary(UnaryOp::Sin, Expr::input(0)), e);
        }
        let program = PointProgram::new(&e);
        assert!(program.depth >= 2);
        let series = eval_series(&e, std::slice::from_ref(&xs), 3);
        let mut stack = Vec::new();
        for (k, x) in xs.iter().enumerate() {
            let env = PointEnv {
                inputs: &[*x],
                states: &[],
                t: 0.0,
            };
            assert_eq!(
                program.eval(&env, &mut stack).to_bits(),
                series[k].to_bits()
            );
        }
    }

    #[test]
    fn point_and_series_evaluation_agree() {
        let xs = vec![0.1, 0.2, -0.4];
        let e = Expr::times(
            Expr::unary(UnaryOp::Sin, Expr::input(0)),
            Expr::plus(Expr::constant(2.0), Expr::input(0)),
        );
        let series = eval_series(&e, std::slice::from_ref(&xs), 3);
        for (k, x) in xs.iter().enumerate() {
            let env = PointEnv {
                inputs: &[*x],
                states: &[],
                t: 0.0,
            };
            let mut stack = Vec::new();
            assert_eq!(PointProgram::new(&e).eval(&env, &mut stack), series[k]);
        }
    }
}
