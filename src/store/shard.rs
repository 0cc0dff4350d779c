//! One HDF5 shard (format version 1). Every dataset is chunked and compressed with a filter
//! plain h5py reads without plugins. A shard is written under a temporary name and renamed
//! only once complete, so a visible `shard-NNNNNN.h5` is always whole.

use super::record::{Sample, SampleKind};
use crate::error::{Error, Result};
use hdf5::types::VarLenUnicode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;

/// The chunk filter. `lzf` is the default: h5py ships it, and it compresses about 3× faster
/// than deflate (see the README's measurements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    Lzf,
    Gzip,
    ShuffleGzip,
    None,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lzf" => Ok(Compression::Lzf),
            "gzip" => Ok(Compression::Gzip),
            "shuffle-gzip" => Ok(Compression::ShuffleGzip),
            "none" => Ok(Compression::None),
            _ => Err(format!(
                "unknown compression '{s}' (lzf, gzip, shuffle-gzip, none)"
            )),
        }
    }
}

pub fn shard_file_name(index: u64) -> String {
    format!("shard-{index:06}.h5")
}

/// What a shard records about the corpus it belongs to.
pub struct ShardMeta<'a> {
    pub seed: u64,
    pub config_json: &'a str,
    pub length: usize,
    pub compression: Compression,
}

/// Target bytes per chunk: big enough to compress well, small enough for h5py's 1 MiB cache.
const CHUNK_BYTES: usize = 512 * 1024;

fn h5err(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
    move |e| Error::hdf5(path, e)
}

/// A 1-D or 2-D dataset with the shard's filter; empty datasets are stored contiguous
/// (HDF5 cannot chunk a zero-sized fixed dimension).
fn write_dataset<T: hdf5::H5Type>(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    data: &[T],
    row_len: Option<usize>,
    compression: Compression,
) -> Result<()> {
    let (shape, chunk): (Vec<usize>, Vec<usize>) = match row_len {
        Some(len) => {
            let rows = data.len() / len;
            let chunk_rows =
                (CHUNK_BYTES / (len * std::mem::size_of::<T>()).max(1)).clamp(1, rows.max(1));
            (vec![rows, len], vec![chunk_rows, len])
        }
        None => {
            let n = data.len();
            let chunk = (CHUNK_BYTES / std::mem::size_of::<T>().max(1)).clamp(1, n.max(1));
            (vec![n], vec![chunk])
        }
    };
    let mut builder = file.new_dataset::<T>().shape(shape.clone());
    if !data.is_empty() {
        builder = builder.chunk(chunk);
        builder = match compression {
            Compression::Lzf => builder.lzf(),
            Compression::Gzip => builder.deflate(4),
            Compression::ShuffleGzip => builder.shuffle().deflate(4),
            Compression::None => builder,
        };
    }
    let ds = builder.create(name).map_err(h5err(path))?;
    if !data.is_empty() {
        ds.write_raw(data).map_err(h5err(path))?;
    }
    Ok(())
}

fn write_attr<T: hdf5::H5Type>(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    value: &T,
) -> Result<()> {
    file.new_attr::<T>()
        .create(name)
        .and_then(|a| a.write_scalar(value))
        .map_err(h5err(path))
}

/// Writes `samples` (in id order) as `dir/shard-{index}.h5` and returns the final path.
pub fn write_shard(
    dir: &Path,
    index: u64,
    samples: &[Sample],
    failed: u64,
    meta: &ShardMeta,
) -> Result<PathBuf> {
    let final_path = dir.join(shard_file_name(index));
    let tmp = dir.join(format!("{}.tmp", shard_file_name(index)));
    let len = meta.length;
    let n_in: usize = samples.iter().map(|s| s.inputs.len()).sum();
    let n_out: usize = samples.iter().map(|s| s.outputs.len()).sum();
    let mut inputs = Vec::with_capacity(n_in * len);
    let mut outputs = Vec::with_capacity(n_out * len);
    let mut input_offsets = vec![0u64];
    let mut output_offsets = vec![0u64];
    let mut symbols = Vec::with_capacity(n_out);
    let mut input_method = Vec::with_capacity(n_in);
    for s in samples {
        s.inputs
            .iter()
            .for_each(|row| inputs.extend_from_slice(row));
        s.outputs
            .iter()
            .for_each(|row| outputs.extend_from_slice(row));
        input_offsets.push(input_offsets.last().unwrap() + s.inputs.len() as u64);
        output_offsets.push(output_offsets.last().unwrap() + s.outputs.len() as u64);
        input_method.extend_from_slice(&s.input_methods);
        for sym in &s.symbols {
            symbols.push(sym.parse::<VarLenUnicode>().map_err(|e| {
                Error::Other(format!("symbol of sample {} is not storable: {e}", s.id))
            })?);
        }
    }
    let sample_id: Vec<u64> = samples.iter().map(|s| s.id).collect();
    let kind: Vec<u8> = samples.iter().map(|s| s.kind as u8).collect();
    let ode_system: Vec<u8> = samples.iter().map(|s| s.ode_system).collect();
    let rejected: Vec<u32> = samples.iter().map(|s| s.rejected).collect();

    {
        let file = hdf5::File::create(&tmp).map_err(h5err(&tmp))?;
        let c = meta.compression;
        write_dataset(&file, &tmp, "inputs", &inputs, Some(len), c)?;
        write_dataset(&file, &tmp, "outputs", &outputs, Some(len), c)?;
        write_dataset(&file, &tmp, "input_offsets", &input_offsets, None, c)?;
        write_dataset(&file, &tmp, "output_offsets", &output_offsets, None, c)?;
        write_dataset(&file, &tmp, "symbols", &symbols, None, c)?;
        write_dataset(&file, &tmp, "sample_id", &sample_id, None, c)?;
        write_dataset(&file, &tmp, "kind", &kind, None, c)?;
        write_dataset(&file, &tmp, "ode_system", &ode_system, None, c)?;
        write_dataset(&file, &tmp, "input_method", &input_method, None, c)?;
        write_dataset(&file, &tmp, "rejected", &rejected, None, c)?;
        write_attr(&file, &tmp, "format_version", &FORMAT_VERSION)?;
        write_attr(&file, &tmp, "seed", &meta.seed)?;
        write_attr(&file, &tmp, "length", &(len as u64))?;
        write_attr(&file, &tmp, "failed", &failed)?;
        let config: VarLenUnicode = meta
            .config_json
            .parse()
            .map_err(|e| Error::Other(format!("config JSON is not storable: {e}")))?;
        write_attr(&file, &tmp, "config", &config)?;
        file.flush().map_err(h5err(&tmp))?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &final_path).map_err(|e| Error::io(&final_path, e))?;
    Ok(final_path)
}

/// A whole shard in memory (shards are bounded by `--shard-size`).
#[derive(Debug)]
pub struct ShardData {
    pub length: usize,
    pub seed: u64,
    pub failed: u64,
    pub config_json: String,
    pub inputs: Vec<f32>,
    pub outputs: Vec<f32>,
    pub input_offsets: Vec<u64>,
    pub output_offsets: Vec<u64>,
    pub symbols: Vec<String>,
    pub sample_id: Vec<u64>,
    pub kind: Vec<u8>,
    pub ode_system: Vec<u8>,
    pub input_method: Vec<u8>,
    pub rejected: Vec<u32>,
}

impl ShardData {
    pub fn n_samples(&self) -> usize {
        self.sample_id.len()
    }

    /// Sample `i` of this shard, rebuilt from the flat arrays.
    pub fn sample(&self, i: usize) -> Sample {
        let len = self.length;
        let rows = |data: &[f32], a: u64, b: u64| -> Vec<Vec<f32>> {
            (a as usize..b as usize)
                .map(|r| data[r * len..(r + 1) * len].to_vec())
                .collect()
        };
        let (ia, ib) = (self.input_offsets[i], self.input_offsets[i + 1]);
        let (oa, ob) = (self.output_offsets[i], self.output_offsets[i + 1]);
        Sample {
            id: self.sample_id[i],
            kind: SampleKind::from_code(self.kind[i]).expect("kinds are checked when read"),
            ode_system: self.ode_system[i],
            inputs: rows(&self.inputs, ia, ib),
            input_methods: self.input_method[ia as usize..ib as usize].to_vec(),
            outputs: rows(&self.outputs, oa, ob),
            symbols: self.symbols[oa as usize..ob as usize].to_vec(),
            rejected: self.rejected[i],
        }
    }
}

fn read<T: hdf5::H5Type>(file: &hdf5::File, path: &Path, name: &str) -> Result<Vec<T>> {
    file.dataset(name)
        .and_then(|d| d.read_raw::<T>())
        .map_err(|e| Error::corpus(path, format!("cannot read dataset '{name}': {e}")))
}

fn attr<T: hdf5::H5Type>(file: &hdf5::File, path: &Path, name: &str) -> Result<T> {
    file.attr(name)
        .and_then(|a| a.read_scalar::<T>())
        .map_err(|e| Error::corpus(path, format!("cannot read attribute '{name}': {e}")))
}

/// Reads and checks a shard; any inconsistency is an error naming the file.
pub fn read_shard(path: &Path) -> Result<ShardData> {
    let file = hdf5::File::open(path)
        .map_err(|e| Error::corpus(path, format!("not a readable HDF5 shard: {e}")))?;
    let version: u32 = attr(&file, path, "format_version")?;
    if version != FORMAT_VERSION {
        return Err(Error::corpus(
            path,
            format!("format_version {version} is not supported (expected {FORMAT_VERSION})"),
        ));
    }
    let length = attr::<u64>(&file, path, "length")? as usize;
    let data = ShardData {
        length,
        seed: attr(&file, path, "seed")?,
        failed: attr(&file, path, "failed")?,
        config_json: attr::<VarLenUnicode>(&file, path, "config")?
            .as_str()
            .to_string(),
        inputs: read(&file, path, "inputs")?,
        outputs: read(&file, path, "outputs")?,
        input_offsets: read(&file, path, "input_offsets")?,
        output_offsets: read(&file, path, "output_offsets")?,
        symbols: read::<VarLenUnicode>(&file, path, "symbols")?
            .into_iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        sample_id: read(&file, path, "sample_id")?,
        kind: read(&file, path, "kind")?,
        ode_system: read(&file, path, "ode_system")?,
        input_method: read(&file, path, "input_method")?,
        rejected: read(&file, path, "rejected")?,
    };
    let n = data.sample_id.len();
    let bad = |what: &str| Err(Error::corpus(path, format!("inconsistent shard: {what}")));
    if length == 0
        || !data.inputs.len().is_multiple_of(length)
        || !data.outputs.len().is_multiple_of(length)
    {
        return bad("series data is not a whole number of rows");
    }
    if data.input_offsets.len() != n + 1 || data.output_offsets.len() != n + 1 {
        return bad("offset arrays do not have N+1 entries");
    }
    let monotone = |o: &[u64]| o.first() == Some(&0) && o.windows(2).all(|w| w[0] <= w[1]);
    if !monotone(&data.input_offsets) || !monotone(&data.output_offsets) {
        return bad("offsets do not start at 0 and increase");
    }
    if data.input_offsets[n] as usize * length != data.inputs.len()
        || data.output_offsets[n] as usize * length != data.outputs.len()
        || data.symbols.len() != data.output_offsets[n] as usize
        || data.input_method.len() != data.input_offsets[n] as usize
    {
        return bad("offsets disagree with the row counts");
    }
    if data.kind.len() != n || data.ode_system.len() != n || data.rejected.len() != n {
        return bad("per-sample arrays have different lengths");
    }
    if let Some(code) = data
        .kind
        .iter()
        .find(|&&k| SampleKind::from_code(k).is_none())
    {
        return bad(&format!("unknown sample kind {code}"));
    }
    Ok(data)
}
