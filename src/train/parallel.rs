//! Data parallelism inside one step: the batch is cut into one block of rows per rayon
//! thread, each block runs its own forward and backward pass, and the blocks' gradients are
//! summed. candle runs a small model's ops on one core, so this is what uses the others.
//! Objectives make it exact by dividing every loss by the whole batch's count, so the
//! blocks' losses (and gradients) add up to the batch's.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use rayon::prelude::*;
use std::ops::Range;

/// `rows` cut into at most `parts` contiguous, non-empty, nearly equal blocks.
pub fn row_blocks(rows: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, rows.max(1));
    (0..parts)
        .map(|i| (i * rows / parts)..((i + 1) * rows / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Runs `block_loss` on every block in parallel, backpropagates each block's loss, and
/// returns one gradient store whose `trainable` entries are the sums over the blocks, with
/// what each block returned beside its loss. A block may lack the gradient of some
/// variables (e.g. no scored token in it).
pub fn block_gradients<T: Send>(
    blocks: Vec<Range<usize>>,
    trainable: &[(String, Var)],
    block_loss: impl Fn(Range<usize>) -> Result<(Tensor, T)> + Sync,
) -> Result<(GradStore, Vec<T>)> {
    let results: Vec<(GradStore, T)> = blocks
        .into_par_iter()
        .map(|rows| {
            let (loss, extra) = block_loss(rows)?;
            Ok((loss.backward()?, extra))
        })
        .collect::<Result<_>>()?;
    let (mut stores, extras): (Vec<GradStore>, Vec<T>) = results.into_iter().unzip();
    // Summed one variable per task; only the trainable variables' gradients are read.
    let sums: Vec<(Var, Tensor)> = trainable
        .par_iter()
        .filter_map(|(_, var)| {
            let mut parts = stores.iter().filter_map(|g| g.get(var));
            let first = parts.next()?.clone();
            Some(
                parts
                    .try_fold(first, |sum, g| sum + g)
                    .map(|sum| (var.clone(), sum)),
            )
        })
        .collect::<Result<_>>()?;
    let mut grads = stores
        .pop()
        .ok_or_else(|| candle_core::Error::Msg("an empty batch".into()))?;
    for (var, sum) in sums {
        grads.insert(&var, sum);
    }
    Ok((grads, extras))
}

/// Runs `rows_of` on every block in parallel and joins each of its outputs along the rows,
/// detached: the per-sample constants of a step (momentum features, EMA targets) that every
/// block's loss reads whole. Each output row must depend on its own sample only.
pub fn constant_rows(
    blocks: &[Range<usize>],
    rows_of: impl Fn(Range<usize>) -> Result<Vec<Tensor>> + Sync,
) -> Result<Vec<Tensor>> {
    let parts: Vec<Vec<Tensor>> = blocks
        .par_iter()
        .map(|rows| rows_of(rows.clone()))
        .collect::<Result<_>>()?;
    let outputs = parts.first().map_or(0, Vec::len);
    (0..outputs)
        .map(|k| {
            let column: Vec<&Tensor> = parts.iter().map(|p| &p[k]).collect();
            Ok(Tensor::cat(&column, 0)?.detach())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_rows_once_and_never_empty() {
        assert_eq!(row_blocks(5, 2), vec![0..2, 2..5]);
        assert_eq!(row_blocks(2, 8), vec![0..1, 1..2]);
        assert_eq!(row_blocks(7, 0), vec![0..7]);
        assert!(row_blocks(0, 3).is_empty());
    }
}
