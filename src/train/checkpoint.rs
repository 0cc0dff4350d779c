//! Atomic checkpoints: `checkpoint/` holds named groups of tensors (for pretraining: online
//! weights, momentum state, optimiser state) and a JSON state (step, recipe). A new
//! checkpoint is written to `checkpoint.tmp/` and swapped in by renames, so a kill at any
//! moment leaves the last good one readable. `save` and `load` mirror each other.

use crate::error::{Action, Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";

fn dirs(run: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        run.join("checkpoint"),
        run.join("checkpoint.tmp"),
        run.join("checkpoint.old"),
    )
}

fn tensor_file(dir: &Path, group: &str) -> PathBuf {
    dir.join(format!("{group}.safetensors"))
}

/// Writes the tensor `groups` and `state` as the run's checkpoint, atomically.
pub fn save<S: Serialize>(
    run: &Path,
    groups: &[(&str, HashMap<String, Tensor>)],
    state: &S,
) -> Result<()> {
    let (current, tmp, old) = dirs(run);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (group, tensors) in groups {
        let path = tensor_file(&tmp, group);
        candle_core::safetensors::save(tensors, &path)
            .map_err(Error::checkpoint(Action::Saving, &path))?;
    }
    let meta = tmp.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state).map_err(Error::json(Action::Saving, &meta))?;
    std::fs::write(&meta, text).map_err(|e| Error::io(&meta, e))?;
    if current.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&current, &old).map_err(|e| Error::io(&current, e))?;
    }
    std::fs::rename(&tmp, &current).map_err(|e| Error::io(&current, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The newest complete checkpoint directory, if any (`checkpoint.old` covers a kill between
/// the two renames).
pub fn latest(run: &Path) -> Option<PathBuf> {
    let (current, _, old) = dirs(run);
    [current, old]
        .into_iter()
        .find(|d| d.join(STATE_FILE).exists())
}

/// A checkpoint directory opened for reading: its state, and its tensor groups on demand.
pub struct Checkpoint<S> {
    pub dir: PathBuf,
    pub state: S,
}

/// Opens checkpoint directory `dir` (from `latest`) and reads its state.
pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<Checkpoint<S>> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state = serde_json::from_str(&text).map_err(Error::json(Action::Loading, &path))?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
    })
}

impl<S> Checkpoint<S> {
    /// The tensors of `group`.
    pub fn tensors(&self, group: &str, device: &Device) -> Result<HashMap<String, Tensor>> {
        let path = tensor_file(&self.dir, group);
        candle_core::safetensors::load(&path, device)
            .map_err(Error::checkpoint(Action::Loading, &path))
    }

    /// Sets every variable of `varmap` from `group`, which must hold each of them.
    pub fn restore(&self, group: &str, varmap: &VarMap, device: &Device) -> Result<()> {
        let tensors = self.tensors(group, device)?;
        crate::model::params::restore(varmap, &tensors, "").map_err(Error::checkpoint(
            Action::Loading,
            tensor_file(&self.dir, group),
        ))
    }
}
