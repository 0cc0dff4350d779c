//! Flat trees: every node in one vector, children by index. The sampler builds these, the
//! evaluator compiles them and kept ones are printed from them, so a candidate tree costs a
//! few vector allocations instead of one per node. Most candidates are rejected (s2-multidim
//! draws 21 trees per accepted sample), and boxing their nodes was most of its allocations.

use super::{BinaryOp, Expr, UnaryOp, Var};

/// Index of a node in its [`FlatTree`].
pub type NodeId = usize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Node {
    Const(f64),
    Var(Var),
    Unary(UnaryOp, NodeId),
    Binary(BinaryOp, NodeId, NodeId),
}

/// An expression whose nodes live in one vector. Nodes are only added, never removed, and
/// every node but the root has exactly one parent.
#[derive(Clone, Debug, Default)]
pub struct FlatTree {
    nodes: Vec<Node>,
    root: NodeId,
}

impl FlatTree {
    pub fn with_capacity(nodes: usize) -> Self {
        FlatTree {
            nodes: Vec::with_capacity(nodes),
            root: 0,
        }
    }

    /// Adds a node and returns its id.
    pub fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn node(&self, id: NodeId) -> Node {
        self.nodes[id]
    }

    pub fn root(&self) -> NodeId {
        self.root
    }

    pub fn set_root(&mut self, id: NodeId) {
        self.root = id;
    }

    /// Nodes stored: the tree's size when every pushed node was attached, as the sampler and
    /// `From<&Expr>` do (`wrap` reuses the wrapped node's slot for the parent).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_additive(&self, id: NodeId) -> bool {
        matches!(
            self.nodes[id],
            Node::Binary(BinaryOp::Add | BinaryOp::Sub, _, _)
        )
    }

    /// Puts a new parent above node `id`, in place: the node moves to a new slot and `id`
    /// becomes `parent(moved)`, so whatever pointed at `id` now points at the parent.
    pub fn wrap(&mut self, id: NodeId, parent: impl FnOnce(&mut Self, NodeId) -> Node) {
        let moved = self.push(self.nodes[id]);
        self.nodes[id] = parent(self, moved);
    }

    /// The boxed expression under `id`.
    fn to_expr(&self, id: NodeId) -> Expr {
        match self.nodes[id] {
            Node::Const(c) => Expr::Const(c),
            Node::Var(v) => Expr::Var(v),
            Node::Unary(op, a) => Expr::unary(op, self.to_expr(a)),
            Node::Binary(op, a, b) => Expr::binary(op, self.to_expr(a), self.to_expr(b)),
        }
    }
}

impl From<&Expr> for FlatTree {
    fn from(expr: &Expr) -> Self {
        fn add(tree: &mut FlatTree, e: &Expr) -> NodeId {
            let node = match e {
                Expr::Const(c) => Node::Const(*c),
                Expr::Var(v) => Node::Var(*v),
                Expr::Unary(op, a) => Node::Unary(*op, add(tree, a)),
                Expr::Binary(op, a, b) => {
                    let a = add(tree, a);
                    Node::Binary(*op, a, add(tree, b))
                }
            };
            tree.push(node)
        }
        let mut tree = FlatTree::with_capacity(expr.size());
        let root = add(&mut tree, expr);
        tree.set_root(root);
        tree
    }
}

impl From<&FlatTree> for Expr {
    fn from(tree: &FlatTree) -> Self {
        tree.to_expr(tree.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_survive_the_round_trip() {
        let e = Expr::plus(
            Expr::constant(1.5),
            Expr::unary(
                UnaryOp::Sin,
                Expr::binary(BinaryOp::Div, Expr::input(0), Expr::time()),
            ),
        );
        let flat = FlatTree::from(&e);
        assert_eq!(flat.node_count(), e.size());
        assert_eq!(Expr::from(&flat), e);
    }

    #[test]
    fn wrapping_keeps_the_parent_link() {
        let e = Expr::times(Expr::input(0), Expr::input(1));
        let mut flat = FlatTree::from(&e);
        let Node::Binary(_, left, _) = flat.node(flat.root()) else {
            panic!("a product")
        };
        flat.wrap(left, |_, moved| Node::Unary(UnaryOp::Exp, moved));
        let want = Expr::times(Expr::unary(UnaryOp::Exp, Expr::input(0)), Expr::input(1));
        assert_eq!(Expr::from(&flat), want);
    }
}
