//! Test helpers shared by the ops' and the models' tests.

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;

/// The largest |element| of `t`.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// Compares a fused op with its composition on the same inputs: outputs, and the gradients
/// of every input under a loss that weights each output element differently.
pub fn check(
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    composition: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (a, b) = (fused(&tensors).unwrap(), composition(&tensors).unwrap());
    assert_eq!(a.dims(), b.dims());
    let diff = max_diff(&a, &b);
    assert!(diff < 1e-5, "outputs differ by {diff}");
    let weights = randn(a.dims(), 1.0);
    let loss = |y: Tensor| (y * &weights).unwrap().sum_all().unwrap();
    let (ga, gb) = (loss(a).backward().unwrap(), loss(b).backward().unwrap());
    for (i, var) in vars.iter().enumerate() {
        let (ga, gb) = (ga.get(var).unwrap(), gb.get(var).unwrap());
        let diff = max_diff(ga, gb);
        assert!(diff < 1e-4, "gradients of input {i} differ by {diff}");
    }
}

std::thread_local! {
    /// Each test runs on its own thread, so each test sees the same draws on every run.
    static DRAWS: std::cell::RefCell<crate::rng::SampleRng> =
        std::cell::RefCell::new(crate::rng::sample_rng(7, 0));
}

/// Unit-normal entries times `scale`, from a seeded stream: candle's CPU randn cannot be
/// seeded, and a test whose inputs change from run to run passes or fails by chance.
pub fn randn(shape: &[usize], scale: f64) -> Tensor {
    let n = shape.iter().product();
    let values: Vec<f32> = DRAWS.with_borrow_mut(|rng| {
        (0..n)
            .map(|_| (rng.sample::<f64, _>(rand_distr::StandardNormal) * scale) as f32)
            .collect()
    });
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Every variable has a gradient, and none is all zeros (a missing backward pass in candle
/// shows up exactly like that).
pub fn assert_every_gradient_nonzero(grads: &GradStore, vars: &[(String, Var)]) {
    for (name, var) in vars {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{name} has a zero gradient");
    }
}
