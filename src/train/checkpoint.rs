//! Atomic checkpoints: `checkpoint/` holds the whole model (online weights, momentum copies
//! and queues), the optimiser state, the step and the recipe. A new checkpoint is written to
//! `checkpoint.tmp/` and swapped in by renames, so a kill at any moment leaves the last good
//! one readable.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct CheckpointFiles {
    pub tensors: Vec<(&'static str, HashMap<String, Tensor>)>,
    pub meta_json: String,
}

fn dirs(run: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        run.join("checkpoint"),
        run.join("checkpoint.tmp"),
        run.join("checkpoint.old"),
    )
}

pub fn save(run: &Path, files: &CheckpointFiles) -> Result<()> {
    let (current, tmp, old) = dirs(run);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (name, tensors) in &files.tensors {
        let path = tmp.join(format!("{name}.safetensors"));
        candle_core::safetensors::save(tensors, &path)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    }
    let meta = tmp.join("state.json");
    std::fs::write(&meta, &files.meta_json).map_err(|e| Error::io(&meta, e))?;
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
        .find(|d| d.join("state.json").exists())
}

pub fn load_tensors(dir: &Path, name: &str, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, device)
        .map_err(|e| Error::corpus(&path, format!("unreadable checkpoint: {e}")))
}

pub fn load_meta<T: DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::corpus(&path, format!("invalid checkpoint state: {e}")))
}

pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("checkpoint state serialises")
}
