//! Test helpers shared by the ops' and the models' tests.

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

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
    let weights = Tensor::randn(0f32, 1.0, a.shape(), a.device()).unwrap();
    let loss = |y: Tensor| (y * &weights).unwrap().sum_all().unwrap();
    let (ga, gb) = (loss(a).backward().unwrap(), loss(b).backward().unwrap());
    for (i, var) in vars.iter().enumerate() {
        let (ga, gb) = (ga.get(var).unwrap(), gb.get(var).unwrap());
        let diff = max_diff(ga, gb);
        assert!(diff < 1e-4, "gradients of input {i} differ by {diff}");
    }
}

/// Unit-normal entries times `scale` (candle's unseeded RNG: the checks hold for any draw).
pub fn randn(shape: &[usize], scale: f64) -> Tensor {
    (Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap() * scale).unwrap()
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
