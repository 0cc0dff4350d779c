//! Random expression trees, following the reference's recipe: a uniformly sampled binary
//! skeleton (Lample & Charton), leaves that use every input before repeating one, unary
//! operators inserted above small subtrees, then affine prefactors.

use super::flat::{FlatTree, Node, NodeId};
use super::{BinaryOp, UnaryOp, Var};
use crate::checks::check_count;
use crate::error::{Error, Result};
use crate::rng::SampleRng;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{weighted::WeightedIndex, Distribution};
use serde::{Deserialize, Serialize};

/// Relative weights of each operator; 0 disables it. Defaults are the reference's.
/// `diff` (a smoothed time derivative) is deliberately absent: it is not a pointwise
/// function of x, so a symbol containing it could not be re-evaluated by a parser.
/// Time dependence enters through the ODE samples instead.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    pub add: f64,
    pub sub: f64,
    pub mul: f64,
    pub div: f64,
    pub abs: f64,
    pub inv: f64,
    pub sqrt: f64,
    pub log: f64,
    pub exp: f64,
    pub sin: f64,
    pub cos: f64,
    pub tan: f64,
    pub arctan: f64,
    pub pow2: f64,
    pub pow3: f64,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            add: 1.0,
            sub: 1.0,
            mul: 1.0,
            div: 0.0,
            abs: 1.0,
            inv: 3.0,
            sqrt: 5.0,
            log: 1.0,
            exp: 1.0,
            sin: 1.0,
            cos: 1.0,
            tan: 0.2,
            arctan: 0.2,
            pow2: 3.0,
            pow3: 1.0,
        }
    }
}

impl OperatorConfig {
    fn binary_weights(&self) -> [(BinaryOp, f64); 4] {
        [
            (BinaryOp::Add, self.add),
            (BinaryOp::Sub, self.sub),
            (BinaryOp::Mul, self.mul),
            (BinaryOp::Div, self.div),
        ]
    }

    fn unary_weights(&self) -> [(UnaryOp, f64); 11] {
        [
            (UnaryOp::Abs, self.abs),
            (UnaryOp::Inv, self.inv),
            (UnaryOp::Sqrt, self.sqrt),
            (UnaryOp::Log, self.log),
            (UnaryOp::Exp, self.exp),
            (UnaryOp::Sin, self.sin),
            (UnaryOp::Cos, self.cos),
            (UnaryOp::Tan, self.tan),
            (UnaryOp::Atan, self.arctan),
            (UnaryOp::Pow2, self.pow2),
            (UnaryOp::Pow3, self.pow3),
        ]
    }
}

/// How trees are sized and filled. Defaults are the reference's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolicConfig {
    pub operators: OperatorConfig,
    /// Binary operators per output ~ U{0 .. max_binary_ops_offset + binary_ops_per_input·ID - 1}.
    pub max_binary_ops_offset: usize,
    pub binary_ops_per_input: usize,
    /// Unary operators per output ~ U{0 .. max_unary_ops}.
    pub max_unary_ops: usize,
    /// A unary operator may sit only above a subtree with fewer nodes than this.
    pub max_unary_depth: usize,
    /// Once every input is used, a leaf is an integer constant with this probability.
    pub prob_const: f64,
    /// Integer leaves are drawn from ±1..±max_int (plus e, pi and Euler's gamma).
    pub max_int: u32,
    /// Prefactors are ±m·10^e with m in 1..10^digits - 1 and e in [min_exponent, max_exponent].
    pub prefactor_digits: u32,
    pub prefactor_min_exponent: i32,
    pub prefactor_max_exponent: i32,
}

impl Default for SymbolicConfig {
    fn default() -> Self {
        SymbolicConfig {
            operators: OperatorConfig::default(),
            max_binary_ops_offset: 4,
            binary_ops_per_input: 1,
            max_unary_ops: 5,
            max_unary_depth: 6,
            prob_const: 0.25,
            max_int: 10,
            prefactor_digits: 3,
            prefactor_min_exponent: -3,
            prefactor_max_exponent: -1,
        }
    }
}

impl SymbolicConfig {
    pub fn validate(&self) -> Result<()> {
        let check_weights = |name: &str, ws: &[f64]| -> Result<()> {
            if ws.iter().any(|w| !w.is_finite() || *w < 0.0) {
                return Err(Error::Config(format!(
                    "symbolic.operators: {name} weights must be finite and >= 0"
                )));
            }
            if ws.iter().sum::<f64>() <= 0.0 {
                return Err(Error::Config(format!(
                    "symbolic.operators: at least one {name} operator needs a positive weight"
                )));
            }
            Ok(())
        };
        let b: Vec<f64> = self
            .operators
            .binary_weights()
            .iter()
            .map(|p| p.1)
            .collect();
        let u: Vec<f64> = self.operators.unary_weights().iter().map(|p| p.1).collect();
        check_weights("binary", &b)?;
        if self.max_unary_ops > 0 {
            check_weights("unary", &u)?;
        }
        if !(0.0..=1.0).contains(&self.prob_const) {
            return Err(Error::Config(
                "symbolic.prob_const must lie in [0, 1]".into(),
            ));
        }
        if self.max_int == 0 {
            return Err(Error::Config("symbolic.max_int must be >= 1".into()));
        }
        if !(1..=6).contains(&self.prefactor_digits) {
            return Err(Error::Config(
                "symbolic.prefactor_digits must lie in 1..=6".into(),
            ));
        }
        if self.prefactor_min_exponent > self.prefactor_max_exponent {
            return Err(Error::Config(
                "symbolic.prefactor_min_exponent exceeds prefactor_max_exponent".into(),
            ));
        }
        check_count(
            "symbolic.max_binary_ops_offset",
            self.max_binary_ops_offset,
            1,
            64,
        )?;
        check_count(
            "symbolic.binary_ops_per_input",
            self.binary_ops_per_input,
            0,
            64,
        )?;
        check_count("symbolic.max_unary_ops", self.max_unary_ops, 0, 64)?;
        check_count("symbolic.max_unary_depth", self.max_unary_depth, 0, 64)?;
        let exponents = -30..=30;
        if !(exponents.contains(&self.prefactor_min_exponent)
            && exponents.contains(&self.prefactor_max_exponent))
        {
            return Err(Error::Config(
                "symbolic.prefactor_min_exponent and prefactor_max_exponent must lie in [-30, 30]"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A sampler built once per config; cheap to share across threads.
pub struct TreeSampler {
    cfg: SymbolicConfig,
    binary_ops: Vec<BinaryOp>,
    binary_dist: WeightedIndex<f64>,
    unary_ops: Vec<UnaryOp>,
    unary_dist: Option<WeightedIndex<f64>>,
    /// skeletons[n][e]: number of binary trees with n operators growable from e empty slots.
    skeletons: Vec<Vec<f64>>,
}

const MAX_SKELETON_OPS: usize = 64;

impl TreeSampler {
    pub fn new(cfg: &SymbolicConfig) -> Result<Self> {
        cfg.validate()?;
        let (binary_ops, bw): (Vec<_>, Vec<_>) = cfg
            .operators
            .binary_weights()
            .into_iter()
            .filter(|p| p.1 > 0.0)
            .unzip();
        let (unary_ops, uw): (Vec<_>, Vec<_>) = cfg
            .operators
            .unary_weights()
            .into_iter()
            .filter(|p| p.1 > 0.0)
            .unzip();
        let binary_dist = WeightedIndex::new(bw).map_err(|e| Error::Config(e.to_string()))?;
        let unary_dist = if uw.is_empty() {
            None
        } else {
            Some(WeightedIndex::new(uw).map_err(|e| Error::Config(e.to_string()))?)
        };
        Ok(TreeSampler {
            cfg: cfg.clone(),
            binary_ops,
            binary_dist,
            unary_ops,
            unary_dist,
            skeletons: skeleton_counts(MAX_SKELETON_OPS),
        })
    }

    /// The number of binary operators an output over `n_inputs` inputs gets.
    fn draw_binary_count(&self, rng: &mut SampleRng, n_inputs: usize) -> usize {
        let hi = self.cfg.max_binary_ops_offset + self.cfg.binary_ops_per_input * n_inputs;
        rng.random_range(0..hi).min(MAX_SKELETON_OPS)
    }

    /// A random expression over `n_inputs` input variables `x0..`.
    pub fn sample(&self, rng: &mut SampleRng, n_inputs: usize) -> FlatTree {
        let vars: Vec<Var> = (0..n_inputs).map(Var::Input).collect();
        self.sample_over(rng, &vars)
    }

    /// A random expression whose leaves are drawn from `vars` (ODE right-hand sides mix
    /// inputs, states and time).
    pub fn sample_over(&self, rng: &mut SampleRng, vars: &[Var]) -> FlatTree {
        let n_binary = self.draw_binary_count(rng, vars.len());
        let n_unary = rng.random_range(0..=self.cfg.max_unary_ops);
        let mut leaves = LeafSource::new(vars);
        let skeleton = self.skeleton(rng, n_binary);
        // Room for the skeleton, its unaries and about two prefactor nodes per node.
        let mut tree = FlatTree::with_capacity(4 * (skeleton.len() + n_unary) + 4);
        self.grow(rng, &skeleton, &mut leaves, &mut tree);
        self.insert_unaries(rng, &mut tree, n_unary);
        self.add_prefactors(rng, &mut tree);
        tree
    }

    /// Lample–Charton sampling of a binary skeleton with `n_ops` internal nodes, uniform over
    /// all such trees. Nodes are stored in creation order; `None` marks a leaf.
    fn skeleton(&self, rng: &mut SampleRng, n_ops: usize) -> Vec<SkeletonNode> {
        let d = &self.skeletons;
        let mut nodes = Vec::with_capacity(2 * n_ops + 1);
        nodes.push(SkeletonNode::Leaf);
        // Indices of still-empty slots, in the order they were created.
        let mut empty: Vec<usize> = Vec::with_capacity(2 * n_ops + 1);
        empty.push(0);
        let mut weights: Vec<f64> = Vec::with_capacity(n_ops + 1);
        let mut cursor = 0usize;
        let mut remaining = n_ops;
        while remaining > 0 {
            let n_empty = empty.len() - cursor;
            weights.clear();
            weights.extend(
                (0..n_empty).map(|i| d[remaining - 1][n_empty - i + 1] / d[remaining][n_empty]),
            );
            let skip = WeightedIndex::new(&weights)
                .map(|w| w.sample(rng))
                .unwrap_or(0);
            cursor += skip;
            let op = self.binary_ops[self.binary_dist.sample(rng)];
            let left = nodes.len();
            nodes.push(SkeletonNode::Leaf);
            nodes.push(SkeletonNode::Leaf);
            nodes[empty[cursor]] = SkeletonNode::Op(op, left, left + 1);
            empty.push(left);
            empty.push(left + 1);
            cursor += 1;
            remaining -= 1;
        }
        nodes
    }

    /// Fills `skeleton`'s slots with leaves into `tree`, and makes the result its root.
    fn grow(
        &self,
        rng: &mut SampleRng,
        skeleton: &[SkeletonNode],
        leaves: &mut LeafSource,
        tree: &mut FlatTree,
    ) {
        let root = self.fill(rng, skeleton, 0, leaves, tree);
        tree.set_root(root);
    }

    fn fill(
        &self,
        rng: &mut SampleRng,
        nodes: &[SkeletonNode],
        at: usize,
        leaves: &mut LeafSource,
        tree: &mut FlatTree,
    ) -> NodeId {
        let node = match nodes[at] {
            SkeletonNode::Op(op, l, r) => {
                let a = self.fill(rng, nodes, l, leaves, tree);
                let b = self.fill(rng, nodes, r, leaves, tree);
                Node::Binary(op, a, b)
            }
            SkeletonNode::Leaf => leaves.next(rng, &self.cfg),
        };
        tree.push(node)
    }

    /// Puts a random unary operator above every child subtree smaller than
    /// `max_unary_depth`, then keeps a random `n_unary` of them.
    fn insert_unaries(&self, rng: &mut SampleRng, tree: &mut FlatTree, n_unary: usize) {
        let Some(dist) = &self.unary_dist else {
            return;
        };
        let mut wrapped = Vec::with_capacity(tree.node_count());
        small_children(tree, tree.root(), self.cfg.max_unary_depth, &mut wrapped);
        let mut keep = vec![false; wrapped.iter().filter(|&&s| s).count()];
        for k in keep.iter_mut().take(n_unary) {
            *k = true;
        }
        keep.shuffle(rng);
        // Per child in pre-order, small becomes wrapped: a kept slot among the small ones.
        let mut slots = keep.into_iter();
        for w in wrapped.iter_mut().filter(|w| **w) {
            *w = slots.next() == Some(true);
        }
        let mut visited = 0usize;
        self.wrap_children(rng, tree, tree.root(), &wrapped, &mut visited, dist);
    }

    /// Visits children in the same pre-order as `small_children`.
    fn wrap_children(
        &self,
        rng: &mut SampleRng,
        tree: &mut FlatTree,
        id: NodeId,
        wrapped: &[bool],
        visited: &mut usize,
        dist: &WeightedIndex<f64>,
    ) {
        let mut wrap = |tree: &mut FlatTree, child: NodeId, rng: &mut SampleRng| {
            let op = wrapped[*visited].then(|| self.unary_ops[dist.sample(rng)]);
            *visited += 1;
            self.wrap_children(rng, tree, child, wrapped, visited, dist);
            if let Some(op) = op {
                tree.wrap(child, |_, inner| Node::Unary(op, inner));
            }
        };
        match tree.node(id) {
            Node::Binary(_, a, b) => {
                wrap(tree, a, rng);
                wrap(tree, b, rng);
            }
            Node::Unary(_, a) => wrap(tree, a, rng),
            Node::Const(_) | Node::Var(_) => {}
        }
    }

    /// A prefactor ±m·10^e.
    fn prefactor(&self, rng: &mut SampleRng) -> f64 {
        let max_m = 10u32.pow(self.cfg.prefactor_digits) - 1;
        let m = rng.random_range(1..=max_m);
        let e = rng.random_range(self.cfg.prefactor_min_exponent..=self.cfg.prefactor_max_exponent);
        let magnitude = nearest_decimal(m, e);
        if rng.random_bool(0.5) {
            -magnitude
        } else {
            magnitude
        }
    }

    /// The reference's "reduced constants" affine form: children of +/- get `a·(.)`, unary
    /// arguments get `a + b·(.)`, and the root gets `a + (.)` (with `a·(.)` if nothing else
    /// added a scale).
    fn add_prefactors(&self, rng: &mut SampleRng, tree: &mut FlatTree) {
        let (root, mut added) = (tree.root(), false);
        self.prefactors_below(rng, tree, root, &mut added);
        if !added {
            scale(tree, root, self.prefactor(rng));
        }
        shift(tree, root, self.prefactor(rng));
    }

    fn prefactors_below(
        &self,
        rng: &mut SampleRng,
        tree: &mut FlatTree,
        id: NodeId,
        added: &mut bool,
    ) {
        match tree.node(id) {
            Node::Binary(BinaryOp::Add | BinaryOp::Sub, a, b) => {
                for child in [a, b] {
                    let additive = tree.is_additive(child);
                    self.prefactors_below(rng, tree, child, added);
                    if !additive {
                        *added = true;
                        scale(tree, child, self.prefactor(rng));
                    }
                }
            }
            Node::Unary(_, a) => {
                let additive = tree.is_additive(a);
                self.prefactors_below(rng, tree, a, added);
                if !additive {
                    *added = true;
                    // The shift's constant is drawn before the scale's (the order of draws
                    // fixes the samples), though the scale goes on first.
                    let c = self.prefactor(rng);
                    scale(tree, a, self.prefactor(rng));
                    shift(tree, a, c);
                }
            }
            Node::Binary(_, a, b) => {
                self.prefactors_below(rng, tree, a, added);
                self.prefactors_below(rng, tree, b, added);
            }
            Node::Const(_) | Node::Var(_) => {}
        }
    }
}

/// Node `id` becomes `c * (id)`.
fn scale(tree: &mut FlatTree, id: NodeId, c: f64) {
    with_constant(tree, id, BinaryOp::Mul, c);
}

/// Node `id` becomes `c + (id)`.
fn shift(tree: &mut FlatTree, id: NodeId, c: f64) {
    with_constant(tree, id, BinaryOp::Add, c);
}

fn with_constant(tree: &mut FlatTree, id: NodeId, op: BinaryOp, c: f64) {
    tree.wrap(id, |t, inner| {
        Node::Binary(op, t.push(Node::Const(c)), inner)
    });
}

#[derive(Clone, Copy)]
enum SkeletonNode {
    Leaf,
    Op(BinaryOp, usize, usize),
}

/// D[n][e] = D[n][e-1] + D[n-1][e+1], D[0][e] = 1, D[n][0] = 0.
fn skeleton_counts(max_ops: usize) -> Vec<Vec<f64>> {
    let width = 2 * max_ops + 2;
    let mut d = vec![vec![0.0f64; width + 1]; max_ops + 1];
    d[0][1..=width].fill(1.0);
    for n in 1..=max_ops {
        for e in 1..width {
            d[n][e] = d[n][e - 1] + d[n - 1][e + 1];
        }
    }
    d
}

/// Appends, for every child under `id` in pre-order, whether its subtree has fewer than
/// `max_depth` nodes; returns the size of `id`'s subtree. One pass, sizes bottom-up.
fn small_children(tree: &FlatTree, id: NodeId, max_depth: usize, small: &mut Vec<bool>) -> usize {
    let visit = |child: NodeId, small: &mut Vec<bool>| {
        let at = small.len();
        small.push(false);
        let size = small_children(tree, child, max_depth, small);
        small[at] = size < max_depth;
        size
    };
    1 + match tree.node(id) {
        Node::Binary(_, a, b) => visit(a, small) + visit(b, small),
        Node::Unary(_, a) => visit(a, small),
        Node::Const(_) | Node::Var(_) => 0,
    }
}

/// Hands out leaves: the first is a random variable, then unused variables in order, then
/// (once all are used) an integer constant with probability `prob_const` or a random variable.
struct LeafSource<'a> {
    vars: &'a [Var],
    used: Vec<bool>,
    first: bool,
}

impl<'a> LeafSource<'a> {
    fn new(vars: &'a [Var]) -> Self {
        LeafSource {
            vars,
            used: vec![false; vars.len()],
            first: true,
        }
    }

    fn next(&mut self, rng: &mut SampleRng, cfg: &SymbolicConfig) -> Node {
        let n = self.vars.len();
        if self.first {
            self.first = false;
            let i = rng.random_range(0..n);
            self.used[i] = true;
            return Node::Var(self.vars[i]);
        }
        if let Some(i) = self.used.iter().position(|u| !u) {
            self.used[i] = true;
            return Node::Var(self.vars[i]);
        }
        if rng.random_bool(cfg.prob_const) {
            Node::Const(integer_constant(rng, cfg.max_int))
        } else {
            Node::Var(self.vars[rng.random_range(0..n)])
        }
    }
}

fn integer_constant(rng: &mut SampleRng, max_int: u32) -> f64 {
    let k = rng.random_range(0..(2 * max_int + 3));
    match k {
        k if k < max_int => (k + 1) as f64,
        k if k < 2 * max_int => -((k - max_int + 1) as f64),
        k if k == 2 * max_int => std::f64::consts::E,
        k if k == 2 * max_int + 1 => std::f64::consts::PI,
        _ => 0.577_215_664_901_532_9, // Euler–Mascheroni constant
    }
}

/// Powers of ten that f64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The f64 nearest m·10^e, the value its decimal text parses to, so a printed symbol reads
/// back to the constant it was evaluated with. With both factors exact, one correctly rounded
/// product or quotient is that value, with no text built and parsed per constant (a third of
/// tree sampling's time went there); outside 10^±22 the text is parsed.
fn nearest_decimal(m: u32, e: i32) -> f64 {
    match EXACT_POWERS_OF_TEN.get(e.unsigned_abs() as usize) {
        Some(p) if e >= 0 => m as f64 * p,
        Some(p) => m as f64 / p,
        None => format!("{m}e{e}")
            .parse()
            .expect("a formatted number parses"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;
    use crate::symbolic::Expr;

    #[test]
    fn prefactors_are_the_values_their_decimal_text_parses_to() {
        let ms = (1..=999).chain([999_999, 123_457, 999_983]);
        for m in ms {
            for e in -30..=30 {
                let text: f64 = format!("{m}e{e}").parse().unwrap();
                assert_eq!(nearest_decimal(m, e).to_bits(), text.to_bits(), "{m}e{e}");
            }
        }
    }

    #[test]
    fn skeleton_counts_match_catalan_numbers() {
        // Trees with n binary operators grown from one slot: the Catalan numbers.
        let d = skeleton_counts(8);
        let catalan = [1.0, 1.0, 2.0, 5.0, 14.0, 42.0, 132.0, 429.0, 1430.0];
        for (n, c) in catalan.iter().enumerate() {
            assert_eq!(d[n][1], *c, "n = {n}");
        }
    }

    #[test]
    fn every_input_is_used_when_the_tree_has_room() {
        let sampler = TreeSampler::new(&SymbolicConfig::default()).unwrap();
        let mut rng = sample_rng(1, 0);
        let vars: Vec<Var> = (0..3).map(Var::Input).collect();
        for n_ops in 2..8 {
            // n_ops binary operators give n_ops + 1 >= 3 leaves.
            let skeleton = sampler.skeleton(&mut rng, n_ops);
            let mut tree = FlatTree::default();
            sampler.grow(&mut rng, &skeleton, &mut LeafSource::new(&vars), &mut tree);
            let s = tree.to_string();
            assert!(
                s.contains("x0") && s.contains("x1") && s.contains("x2"),
                "{s}"
            );
        }
    }

    #[test]
    fn skeletons_are_uniform_over_shapes() {
        // With 3 operators there are 5 shapes; each should be drawn about 1/5 of the time.
        let sampler = TreeSampler::new(&SymbolicConfig::default()).unwrap();
        let mut rng = sample_rng(2, 0);
        let mut counts = std::collections::HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            let nodes = sampler.skeleton(&mut rng, 3);
            *counts.entry(shape_key(&nodes, 0)).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 5);
        for (shape, c) in counts {
            let p = c as f64 / n as f64;
            assert!((p - 0.2).abs() < 0.02, "shape {shape}: {p}");
        }
    }

    fn shape_key(nodes: &[SkeletonNode], at: usize) -> String {
        match nodes[at] {
            SkeletonNode::Leaf => "l".into(),
            SkeletonNode::Op(_, l, r) => {
                format!("({} {})", shape_key(nodes, l), shape_key(nodes, r))
            }
        }
    }

    #[test]
    fn unary_count_is_bounded() {
        let cfg = SymbolicConfig::default();
        let sampler = TreeSampler::new(&cfg).unwrap();
        let mut rng = sample_rng(3, 0);
        for _ in 0..1000 {
            let e = Expr::from(&sampler.sample(&mut rng, 2));
            let mut unary = 0;
            e.visit_ops(&mut |name| {
                if UnaryOp::ALL.iter().any(|u| u.name() == name) {
                    unary += 1;
                }
            });
            assert!(unary <= cfg.max_unary_ops, "{e}");
        }
    }

    #[test]
    fn invalid_weights_are_rejected() {
        let mut cfg = SymbolicConfig::default();
        cfg.operators.add = 0.0;
        cfg.operators.sub = 0.0;
        cfg.operators.mul = 0.0;
        let err = TreeSampler::new(&cfg).err().unwrap().to_string();
        assert!(err.contains("binary"), "{err}");
    }
}
