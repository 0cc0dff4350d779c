//! A finished corpus opened for reading: its manifest and shard paths.

use super::manifest::{check_files, is_part_file, Manifest, MANIFEST};
use super::shard::{read_shard, ShardData};
use crate::digest::sha256_file;
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
        check_files(dir, &manifest)?;
        Ok(Corpus {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    fn shard_path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.manifest.shards[i].file)
    }

    /// True when shard `i` exists and its bytes match the manifest's checksum.
    fn intact(&self, i: usize) -> Result<bool> {
        let path = self.shard_path(i);
        Ok(path.exists() && sha256_file(&path)? == self.manifest.shards[i].sha256)
    }

    /// Reads shard `i` after checking it against its manifest checksum, so a damaged shard is
    /// never used.
    pub fn read_shard(&self, i: usize) -> Result<ShardData> {
        let path = self.shard_path(i);
        if !self.intact(i)? {
            return Err(Error::corpus(
                &path,
                "its checksum does not match the manifest: the shard is damaged or was replaced; regenerate it with `s2kit generate --resume` and the original arguments (for a merged corpus: the worker that wrote it, then `s2kit merge` again)",
            ));
        }
        read_shard(&path)
    }

    /// Recomputes every shard's checksum; a missing or mismatching shard is an error that
    /// lists them all.
    pub fn verify(&self) -> Result<()> {
        let mut bad = Vec::new();
        for i in 0..self.manifest.shards.len() {
            if !self.intact(i)? {
                bad.push(self.shard_path(i).display().to_string());
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
