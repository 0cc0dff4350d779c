//! Atomic checkpoints: `checkpoint/` holds named groups of tensors (for pretraining: online
//! weights, momentum state, optimiser state) and a JSON state (step, recipe). A new
//! checkpoint is written to `checkpoint.tmp/` and swapped in by renames, so a kill at any
//! moment leaves the last good one readable. The state file also records the SHA-256 of
//! every tensor file, and `load` checks them, so a damaged checkpoint is refused instead of
//! resuming with different numbers. `save` and `load` mirror each other.

use crate::digest::sha256_file;
use crate::error::{Action, Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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

/// `state.json`: the caller's state and the digest of each tensor group's file.
#[derive(Serialize, Deserialize)]
struct Stored<S> {
    state: S,
    sha256: BTreeMap<String, String>,
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
    let mut sha256 = BTreeMap::new();
    for (group, tensors) in groups {
        let path = tensor_file(&tmp, group);
        candle_core::safetensors::save(tensors, &path)
            .map_err(Error::checkpoint(Action::Saving, &path))?;
        sha256.insert(group.to_string(), sha256_file(&path)?);
    }
    let meta = tmp.join(STATE_FILE);
    let text = serde_json::to_string_pretty(&Stored { state, sha256 })
        .map_err(Error::json(Action::Saving, &meta))?;
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
    sha256: BTreeMap<String, String>,
}

/// Opens checkpoint directory `dir` (from `latest`), reads its state and checks every tensor
/// file against the digest recorded with it.
pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<Checkpoint<S>> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let stored: Stored<S> = serde_json::from_str(&text).map_err(|e| {
        let unverifiable = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("sha256").is_none());
        if unverifiable {
            Error::Request(format!(
                "{}: written by an older s2kit, without checksums, so it cannot be verified; start a new run directory",
                path.display()
            ))
        } else {
            Error::json(Action::Loading, &path)(e)
        }
    })?;
    for (group, digest) in &stored.sha256 {
        let file = tensor_file(dir, group);
        if sha256_file(&file)? != *digest {
            return Err(Error::Request(format!(
                "{}: the checkpoint file is damaged (its checksum differs from the one recorded in {STATE_FILE}); resuming from it would give different numbers",
                file.display()
            )));
        }
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state: stored.state,
        sha256: stored.sha256,
    })
}

impl<S> Checkpoint<S> {
    /// The tensors of `group` (one whose checksum was recorded and verified).
    pub fn tensors(&self, group: &str, device: &Device) -> Result<HashMap<String, Tensor>> {
        let path = tensor_file(&self.dir, group);
        if !self.sha256.contains_key(group) {
            return Err(Error::Request(format!(
                "{}: the checkpoint records no checksum for it",
                path.display()
            )));
        }
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
