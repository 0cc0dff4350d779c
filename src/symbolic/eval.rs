//! Evaluation. Expressions are flattened once into a postfix [`Program`]: ODE solvers run it
//! at single time points, explicit samples over whole series a block of points at a time.

use super::flat::{FlatTree, Node, NodeId};
use super::{BinaryOp, Expr, UnaryOp, Var};

/// Points per block of series evaluation: enough to amortise the dispatch per step, few
/// enough that a series failing its checks early is abandoned early.
const BLOCK: usize = 32;

thread_local! {
    /// The block stack of [`Program::visit_series`], kept between calls on each thread:
    /// allocating it for every tree evaluated was one of generation's larger allocation costs.
    static SERIES_STACK: std::cell::RefCell<Vec<[f64; BLOCK]>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The values of every variable at one instant.
pub struct PointEnv<'a> {
    pub inputs: &'a [f64],
    pub states: &'a [f64],
    pub t: f64,
}

/// A value a step reads directly, without a stack slot.
#[derive(Clone, Copy, Debug)]
enum Leaf {
    Const(f64),
    Input(usize),
    State(usize),
    Time,
}

impl Leaf {
    fn of(node: Node) -> Option<Leaf> {
        match node {
            Node::Const(c) => Some(Leaf::Const(c)),
            Node::Var(Var::Input(i)) => Some(Leaf::Input(i)),
            Node::Var(Var::State(j)) => Some(Leaf::State(j)),
            Node::Var(Var::Time) => Some(Leaf::Time),
            Node::Unary(..) | Node::Binary(..) => None,
        }
    }

    fn at(self, env: &PointEnv) -> f64 {
        match self {
            Leaf::Const(c) => c,
            Leaf::Input(i) => env.inputs[i],
            Leaf::State(j) => env.states[j],
            Leaf::Time => env.t,
        }
    }

    /// The leaf over points `start..start + m` of a series: a slice of the input itself, or
    /// `scratch` filled.
    fn block<'a>(self, inputs: &'a [Vec<f64>], start: usize, scratch: &'a mut [f64]) -> &'a [f64] {
        match self {
            Leaf::Input(i) => &inputs[i][start..start + scratch.len()],
            Leaf::Const(c) => {
                scratch.fill(c);
                scratch
            }
            Leaf::Time => {
                scratch
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, v)| *v = (start + k) as f64);
                scratch
            }
            Leaf::State(j) => {
                panic!("eval_series: state variable y{j} has no series; use the ODE solver")
            }
        }
    }
}

/// `into[k] = f(into[k], other[k])` over a block.
fn combine(into: &mut [f64], other: &[f64], f: impl Fn(f64, f64) -> f64) {
    into.iter_mut().zip(other).for_each(|(a, b)| *a = f(*a, *b));
}

/// One step of a [`Program`].
#[derive(Clone, Copy, Debug)]
enum Step {
    Push(Leaf),
    /// `op(left, right)` of two leaves, pushed.
    PushBinary(BinaryOp, Leaf, Leaf),
    /// `c * leaf`, pushed: a prefactor on a variable.
    PushScaled(f64, Leaf),
    Unary(UnaryOp),
    /// The top two values replaced by `op(below, top)`.
    Binary(BinaryOp),
    /// The top value replaced by `op(top, leaf)`.
    BinaryLeafRight(BinaryOp, Leaf),
    /// The top value replaced by `op(leaf, top)`.
    BinaryLeafLeft(BinaryOp, Leaf),
    /// `c * top` and `c + top`: the prefactors' forms, the commonest steps, given their own
    /// steps so that they cost one dispatch instead of three. (IEEE products and sums are the
    /// same in either operand order when c is not NaN, which no constant is, so `top * c` is the
    /// same value.)
    ScaleBy(f64),
    Shift(f64),
}

/// An expression flattened to postfix order: one pass over a flat array and a small value
/// stack, instead of a recursive walk over boxed nodes (which took three quarters of ODE
/// generation time) or a buffer allocated per node. A binary operator with a leaf operand (a
/// constant, a variable) reads that leaf in the same step instead of pushing it first: every
/// prefactor is such an operand, and this halves the steps of a typical program. Each
/// operation is the same as in the tree, with its operands in the same order, so the result
/// is bit-identical to evaluating the tree.
#[derive(Clone, Debug)]
pub struct Program {
    steps: Vec<Step>,
    /// The deepest the value stack gets.
    depth: usize,
}

impl Program {
    pub fn new(tree: &FlatTree) -> Program {
        /// Emits node `id`, whose value lands at stack position `height`.
        fn emit(t: &FlatTree, id: NodeId, steps: &mut Vec<Step>, height: usize, depth: &mut usize) {
            *depth = (*depth).max(height + 1);
            let node = t.node(id);
            if let Some(leaf) = Leaf::of(node) {
                steps.push(Step::Push(leaf));
                return;
            }
            match node {
                Node::Unary(op, a) => {
                    emit(t, a, steps, height, depth);
                    steps.push(Step::Unary(op));
                }
                Node::Binary(op, a, b) => match (Leaf::of(t.node(a)), Leaf::of(t.node(b))) {
                    (Some(left), Some(right)) => steps.push(match (op, left) {
                        (BinaryOp::Mul, Leaf::Const(c)) => Step::PushScaled(c, right),
                        _ => Step::PushBinary(op, left, right),
                    }),
                    (None, Some(leaf)) => {
                        emit(t, a, steps, height, depth);
                        steps.push(Step::BinaryLeafRight(op, leaf));
                    }
                    (Some(leaf), None) => {
                        emit(t, b, steps, height, depth);
                        steps.push(match (op, leaf) {
                            (BinaryOp::Mul, Leaf::Const(c)) => Step::ScaleBy(c),
                            (BinaryOp::Add, Leaf::Const(c)) => Step::Shift(c),
                            _ => Step::BinaryLeafLeft(op, leaf),
                        });
                    }
                    (None, None) => {
                        emit(t, a, steps, height, depth);
                        emit(t, b, steps, height + 1, depth);
                        steps.push(Step::Binary(op));
                    }
                },
                Node::Const(_) | Node::Var(_) => unreachable!("leaves are emitted above"),
            }
        }
        // A program has at most one step per node; reserving them saves the regrowth.
        let (mut steps, mut depth) = (Vec::with_capacity(tree.node_count()), 0);
        emit(tree, tree.root(), &mut steps, 0, &mut depth);
        Program { steps, depth }
    }

    /// The program of a boxed expression.
    pub fn of_expr(expr: &Expr) -> Program {
        Program::new(&FlatTree::from(expr))
    }

    /// The series over `len` points into `out` (cleared first), `inputs[i]` being channel
    /// `x{i}`, evaluated a block at a time. `check(start, block)` sees each finished block in
    /// order and may stop the evaluation with an error, so a candidate that fails early costs
    /// only its first blocks; `out` is the caller's, so that candidate after candidate can
    /// reuse one buffer.
    pub fn eval_series<E>(
        &self,
        inputs: &[Vec<f64>],
        len: usize,
        out: &mut Vec<f64>,
        mut check: impl FnMut(usize, &[f64]) -> Result<(), E>,
    ) -> Result<(), E> {
        out.clear();
        out.reserve(len);
        self.visit_series(inputs, len, |start, block| {
            check(start, block)?;
            out.extend_from_slice(block);
            Ok(())
        })
    }

    /// [`Program::eval_series`] without keeping the series: `visit(start, block)` sees each
    /// block in order, and may stop the evaluation with an error.
    pub fn visit_series<E>(
        &self,
        inputs: &[Vec<f64>],
        len: usize,
        visit: impl FnMut(usize, &[f64]) -> Result<(), E>,
    ) -> Result<(), E> {
        SERIES_STACK.with(|reused| match reused.try_borrow_mut() {
            Ok(mut stack) => self.visit_with(&mut stack, inputs, len, visit),
            // A `visit` that itself evaluates a series gets a stack of its own.
            Err(_) => self.visit_with(&mut Vec::new(), inputs, len, visit),
        })
    }

    fn visit_with<E>(
        &self,
        stack: &mut Vec<[f64; BLOCK]>,
        inputs: &[Vec<f64>],
        len: usize,
        mut visit: impl FnMut(usize, &[f64]) -> Result<(), E>,
    ) -> Result<(), E> {
        if stack.len() < self.depth {
            stack.resize(self.depth, [0.0; BLOCK]);
        }
        let mut scratch = [0.0f64; BLOCK];
        for start in (0..len).step_by(BLOCK) {
            let m = BLOCK.min(len - start);
            let mut top = 0;
            for step in &self.steps {
                match *step {
                    Step::Push(Leaf::Const(c)) => {
                        stack[top][..m].fill(c);
                        top += 1;
                    }
                    Step::Push(leaf) => {
                        let values = leaf.block(inputs, start, &mut scratch[..m]);
                        stack[top][..m].copy_from_slice(values);
                        top += 1;
                    }
                    Step::PushBinary(op, left, right) => {
                        let values = left.block(inputs, start, &mut scratch[..m]);
                        stack[top][..m].copy_from_slice(values);
                        let right = right.block(inputs, start, &mut scratch[..m]);
                        combine(&mut stack[top][..m], right, |l, r| op.apply(l, r));
                        top += 1;
                    }
                    Step::Unary(op) => {
                        stack[top - 1][..m]
                            .iter_mut()
                            .for_each(|v| *v = op.apply(*v));
                    }
                    Step::Binary(op) => {
                        top -= 1;
                        let (below, above) = stack.split_at_mut(top);
                        combine(&mut below[top - 1][..m], &above[0][..m], |l, r| {
                            op.apply(l, r)
                        });
                    }
                    Step::BinaryLeafRight(op, leaf) => {
                        let right = leaf.block(inputs, start, &mut scratch[..m]);
                        combine(&mut stack[top - 1][..m], right, |l, r| op.apply(l, r));
                    }
                    Step::BinaryLeafLeft(op, leaf) => {
                        let left = leaf.block(inputs, start, &mut scratch[..m]);
                        combine(&mut stack[top - 1][..m], left, |r, l| op.apply(l, r));
                    }
                    Step::PushScaled(c, leaf) => {
                        let values = leaf.block(inputs, start, &mut scratch[..m]);
                        combine(&mut stack[top][..m], values, |_, x| c * x);
                        top += 1;
                    }
                    Step::ScaleBy(c) => stack[top - 1][..m].iter_mut().for_each(|v| *v *= c),
                    Step::Shift(c) => stack[top - 1][..m].iter_mut().for_each(|v| *v += c),
                }
            }
            visit(start, &stack[0][..m])?;
        }
        Ok(())
    }

    /// The value at `env`; `stack` is scratch space, reused between calls.
    pub fn eval(&self, env: &PointEnv, stack: &mut Vec<f64>) -> f64 {
        if stack.len() < self.depth {
            stack.resize(self.depth, 0.0);
        }
        let mut top = 0; // values on the stack
        for step in &self.steps {
            match *step {
                Step::Push(leaf) => {
                    stack[top] = leaf.at(env);
                    top += 1;
                }
                Step::PushBinary(op, left, right) => {
                    stack[top] = op.apply(left.at(env), right.at(env));
                    top += 1;
                }
                Step::Unary(op) => stack[top - 1] = op.apply(stack[top - 1]),
                Step::Binary(op) => {
                    top -= 1;
                    stack[top - 1] = op.apply(stack[top - 1], stack[top]);
                }
                Step::BinaryLeafRight(op, leaf) => {
                    stack[top - 1] = op.apply(stack[top - 1], leaf.at(env));
                }
                Step::BinaryLeafLeft(op, leaf) => {
                    stack[top - 1] = op.apply(leaf.at(env), stack[top - 1]);
                }
                Step::PushScaled(c, leaf) => {
                    stack[top] = c * leaf.at(env);
                    top += 1;
                }
                Step::ScaleBy(c) => stack[top - 1] *= c,
                Step::Shift(c) => stack[top - 1] += c,
            }
        }
        stack[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;
    use crate::symbolic::{SymbolicConfig, TreeSampler};

    /// The whole series, with no checks.
    fn eval_series(expr: &Expr, inputs: &[Vec<f64>], len: usize) -> Vec<f64> {
        whole_series(&Program::of_expr(expr), inputs, len)
    }

    fn whole_series(program: &Program, inputs: &[Vec<f64>], len: usize) -> Vec<f64> {
        let mut all = Vec::new();
        program
            .eval_series(inputs, len, &mut all, |_, _| Ok::<(), ()>(()))
            .unwrap();
        all
    }

    /// The oracle: a recursive walk, one buffer per node.
    fn tree_walk(expr: &Expr, inputs: &[Vec<f64>], len: usize) -> Vec<f64> {
        match expr {
            Expr::Const(c) => vec![*c; len],
            Expr::Var(Var::Input(i)) => inputs[*i].clone(),
            Expr::Var(Var::Time) => (0..len).map(|k| k as f64).collect(),
            Expr::Var(Var::State(_)) => unreachable!(),
            Expr::Unary(op, a) => tree_walk(a, inputs, len)
                .into_iter()
                .map(|x| op.apply(x))
                .collect(),
            Expr::Binary(op, a, b) => {
                let right = tree_walk(b, inputs, len);
                tree_walk(a, inputs, len)
                    .into_iter()
                    .zip(right)
                    .map(|(l, r)| op.apply(l, r))
                    .collect()
            }
        }
    }

    /// The oracle at one point.
    fn point_walk(expr: &Expr, env: &PointEnv) -> f64 {
        match expr {
            Expr::Const(c) => *c,
            Expr::Var(Var::Input(i)) => env.inputs[*i],
            Expr::Var(Var::State(j)) => env.states[*j],
            Expr::Var(Var::Time) => env.t,
            Expr::Unary(op, a) => op.apply(point_walk(a, env)),
            Expr::Binary(op, a, b) => {
                let right = point_walk(b, env);
                op.apply(point_walk(a, env), right)
            }
        }
    }

    #[test]
    fn leaf_operands_keep_their_order() {
        // Sub and Div with a leaf on either side, or on both: the default operators never draw
        // these shapes (Div is off, and Sub's children always get a prefactor), but the ODE
        // catalogue's right-hand sides are full of them.
        let subtree = Expr::unary(UnaryOp::Sin, Expr::input(0));
        let series_operands = [
            Expr::constant(0.7),
            Expr::input(1),
            Expr::Var(Var::Time),
            subtree.clone(),
        ];
        let inputs: Vec<Vec<f64>> = (0..2)
            .map(|c| {
                (0..40)
                    .map(|k| (k as f64 * 0.3 + c as f64).cos() * 2.0)
                    .collect()
            })
            .collect();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let point_operands: Vec<Expr> = series_operands
            .iter()
            .cloned()
            .chain([Expr::state(1)])
            .collect();
        let mut stack = Vec::new();
        for op in [BinaryOp::Sub, BinaryOp::Div] {
            for a in &series_operands {
                for b in &series_operands {
                    let e = Expr::binary(op, a.clone(), b.clone());
                    let (got, want) = (eval_series(&e, &inputs, 40), tree_walk(&e, &inputs, 40));
                    assert_eq!(bits(&got), bits(&want), "{e}");
                }
            }
            for a in &point_operands {
                for b in &point_operands {
                    let e = Expr::binary(op, a.clone(), b.clone());
                    let program = Program::of_expr(&e);
                    let env = PointEnv {
                        inputs: &[1.3, -0.4],
                        states: &[0.2, 2.9],
                        t: 0.6,
                    };
                    let (got, want) = (program.eval(&env, &mut stack), point_walk(&e, &env));
                    assert_eq!(got.to_bits(), want.to_bits(), "{e}");
                }
            }
        }
    }

    #[test]
    fn points_are_bit_identical_to_the_tree_walk() {
        // Right-hand sides as the ODE sampler draws them: inputs, states and time mixed.
        let trees = TreeSampler::new(&SymbolicConfig::default()).unwrap();
        let vars = [Var::Input(0), Var::State(0), Var::State(1), Var::Time];
        let mut stack = Vec::new();
        for id in 0..500 {
            let tree = Expr::from(&trees.sample_over(&mut sample_rng(2, id), &vars));
            let program = Program::of_expr(&tree);
            for k in 0..5 {
                let x = k as f64 * 0.7 - 1.3;
                let (inputs, states) = ([x.sin() * 2.0], [x.cos(), 0.5 - x]);
                let env = PointEnv {
                    inputs: &inputs,
                    states: &states,
                    t: k as f64 * 0.25,
                };
                let (got, want) = (program.eval(&env, &mut stack), point_walk(&tree, &env));
                assert_eq!(got.to_bits(), want.to_bits(), "{tree} at {k}");
            }
        }
    }

    #[test]
    fn blocks_are_bit_identical_to_the_tree_walk() {
        // 77 points: two whole blocks and a short one.
        let trees = TreeSampler::new(&SymbolicConfig::default()).unwrap();
        let inputs: Vec<Vec<f64>> = (0..3)
            .map(|c| {
                (0..77)
                    .map(|k| ((k * (c + 2)) as f64 * 0.37).sin() * 3.0)
                    .collect()
            })
            .collect();
        for id in 0..500 {
            // Compiled from the sampler's flat tree, as the generator does.
            let flat = trees.sample(&mut sample_rng(1, id), 3);
            let tree = Expr::from(&flat);
            let want = tree_walk(&tree, &inputs, 77);
            let got = whole_series(&Program::new(&flat), &inputs, 77);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{tree}");
        }
    }

    #[test]
    fn a_visit_may_evaluate_another_series() {
        // The inner evaluation finds the thread's stack in use and takes one of its own;
        // both must still see their own values.
        let xs: Vec<f64> = (0..70).map(|k| k as f64 - 20.0).collect();
        let inputs = [xs.clone()];
        let outer = Program::of_expr(&Expr::unary(UnaryOp::Pow2, Expr::input(0)));
        let inner = Program::of_expr(&Expr::unary(UnaryOp::Abs, Expr::input(0)));
        let mut seen = Vec::new();
        outer
            .visit_series(&inputs, xs.len(), |start, block| {
                let abs = whole_series(&inner, &inputs, xs.len());
                seen.extend(block.iter().zip(&abs[start..]).map(|(sq, a)| (*sq, a * a)));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(seen.len(), xs.len());
        assert!(seen.iter().all(|(sq, want)| sq == want), "{seen:?}");
    }

    #[test]
    fn a_refused_block_stops_the_evaluation() {
        let xs: Vec<f64> = (0..100).map(|k| k as f64).collect();
        let mut seen = Vec::new();
        let mut out = vec![7.0; 5]; // cleared, then filled with the blocks that passed
        let got =
            Program::of_expr(&Expr::input(0)).eval_series(&[xs], 100, &mut out, |start, block| {
                seen.push((start, block.len()));
                if block.iter().any(|v| *v >= 40.0) {
                    Err(start)
                } else {
                    Ok(())
                }
            });
        assert_eq!(got, Err(32));
        assert_eq!(out, (0..32).map(|k| k as f64).collect::<Vec<_>>());
        assert_eq!(seen, vec![(0, 32), (32, 32)]);
    }

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
        let program = Program::of_expr(&e);
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
            assert_eq!(Program::of_expr(&e).eval(&env, &mut stack), series[k]);
        }
    }
}
