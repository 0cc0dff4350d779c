//! The `VarMap` toolbox: every walk over a model's variables (trainable ones, seeded
//! initialisation, snapshots and restores) lives here, so names and order mean the same
//! thing everywhere.

use crate::rng::SampleRng;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// Names of non-trainable buffers inside a `VarMap`.
fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The variable called `name`, if `varmap` has one.
pub fn var(varmap: &VarMap, name: &str) -> Option<Var> {
    varmap
        .data()
        .lock()
        .expect("var map lock")
        .get(name)
        .cloned()
}

/// The variables whose names start with `prefix`, buffers included, in name order.
pub fn named(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map lock");
    let mut named: Vec<(String, Var)> = data
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// The trainable variables whose names start with `prefix` (buffers excluded), in name order.
pub fn trainable(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let mut vars = named(varmap, prefix);
    vars.retain(|(name, _)| !is_buffer(name));
    vars
}

/// The current values of every variable (shared storage, not copies: for saving).
pub fn tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("var map lock");
    data.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect()
}

/// Copies of every variable's current value (for restoring them later).
pub fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap.data().lock().expect("var map lock");
    data.iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// Sets every variable whose name starts with `prefix` from `values`; each of them must be
/// there, with its shape.
pub fn restore(varmap: &VarMap, values: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
    let vars = named(varmap, prefix);
    // A saved tensor that fits no variable means the weights are of another architecture
    // (a config edited to fewer layers, say): refuse rather than load part of them.
    let mut unused: Vec<&String> = values
        .keys()
        .filter(|k| k.starts_with(prefix) && !vars.iter().any(|(n, _)| n == *k))
        .collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(candle_core::Error::Msg(format!(
            "{} saved tensor(s) fit no variable of the model, e.g. '{}': the weights belong to another configuration",
            unused.len(),
            unused[0]
        )));
    }
    for (name, var) in vars {
        let value = values
            .get(&name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor '{name}'")))?;
        var.set(value)
            .map_err(|e| candle_core::Error::Msg(format!("tensor '{name}': {e}")))?;
    }
    Ok(())
}

/// Re-draws every randomly initialised variable from `rng`, in name order: weights of rank 2
/// or more from Kaiming normal (fan-in, ReLU gain), vectors from U(±1/sqrt(fan-in)) of the
/// sibling weight. candle's CPU backend cannot be seeded, so this is what makes a training
/// seed reproducible. Constant-initialised variables (norm scales and shifts, buffers) are
/// left as they are.
pub fn seeded_init(varmap: &VarMap, rng: &mut SampleRng) -> Result<()> {
    use rand::Rng;
    use rand_distr::StandardNormal;
    let data = varmap.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().filter(|n| !is_buffer(n)).collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        if values.windows(2).all(|w| w[0] == w[1]) {
            continue;
        }
        let dims = var.dims().to_vec();
        let fan_in = if dims.len() >= 2 {
            dims[1..].iter().product::<usize>()
        } else {
            let sibling = name
                .rsplit_once('.')
                .map(|(p, _)| format!("{p}.weight"))
                .unwrap_or_default();
            data.get(&sibling)
                .map(|w| w.dims()[1..].iter().product::<usize>())
                .unwrap_or(dims[0])
        } as f64;
        let fresh: Vec<f32> = if dims.len() >= 2 {
            let std = (2.0 / fan_in).sqrt();
            (0..values.len())
                .map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect()
        } else {
            let bound = 1.0 / fan_in.sqrt();
            (0..values.len())
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(fresh, dims, var.device())?)?;
    }
    Ok(())
}
