//! Access to the f32 elements of a CPU tensor's storage, for the fused and in-place ops.

use candle_core::{CpuStorage, Layout, Result};

/// The span of a contiguous tensor inside its storage, or an error naming the op.
fn span(name: &str, layout: &Layout) -> Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => candle_core::bail!("{name}: the input must be contiguous"),
    }
}

/// The elements of a contiguous f32 tensor, or an error naming the op.
pub fn contiguous<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        CpuStorage::F32(data) => Ok(&data[span(name, layout)?]),
        _ => candle_core::bail!("{name}: only f32 is supported"),
    }
}

/// The elements of a contiguous f32 tensor, writable (for in-place ops).
pub fn contiguous_mut<'a>(
    name: &str,
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> Result<&'a mut [f32]> {
    match storage {
        CpuStorage::F32(data) => Ok(&mut data[span(name, layout)?]),
        _ => candle_core::bail!("{name}: only f32 is supported"),
    }
}
