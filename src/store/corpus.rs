//! A finished corpus opened for reading: its manifest and shard paths.

use super::manifest::{is_part_file, sha256_file, Manifest, MANIFEST};
use super::shard::{read_shard, ShardData};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Corpus {
    pub fn open(dir: &Path) -> Result<Corpus> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            let has_parts = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok())
                .any(|e| is_part_file(&e.file_name().to_string_lossy()));
            let hint = if has_parts {
                "it has worker parts: run `s2kit merge` once every worker has finished"
            } else {
                "not a corpus directory (run `s2kit generate` first)"
            };
            return Err(Error::corpus(dir, format!("no {MANIFEST}; {hint}")));
        }
        let manifest = Manifest::load(&path)?;
        if !manifest.is_complete() {
            return Err(Error::corpus(
                &path,
                format!(
                    "lists {} of {} shards; the generation is unfinished (rerun it with --resume)",
                    manifest.shards.len(),
                    manifest.n_shards()
                ),
            ));
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    fn shard_paths(&self) -> Vec<PathBuf> {
        self.manifest
            .shards
            .iter()
            .map(|s| self.dir.join(&s.file))
            .collect()
    }

    pub fn read_shard(&self, i: usize) -> Result<ShardData> {
        read_shard(&self.dir.join(&self.manifest.shards[i].file))
    }

    /// Recomputes every shard's checksum; a missing or mismatching shard is an error that
    /// lists them all.
    pub fn verify(&self) -> Result<()> {
        let mut bad = Vec::new();
        for (entry, path) in self.manifest.shards.iter().zip(self.shard_paths()) {
            if !path.exists() || sha256_file(&path)? != entry.sha256 {
                bad.push(path.display().to_string());
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        Err(Error::corpus(
            &self.dir,
            format!("checksum mismatch or missing: {}", bad.join(", ")),
        ))
    }
}
