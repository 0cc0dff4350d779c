//! One HDF5 shard (format version 1). Every dataset is chunked and compressed with a filter
//! plain h5py reads without plugins. A shard is written under a temporary name and renamed
//! only once complete, so a visible `shard-NNNNNN.h5` is always whole.

use super::chunks::{chunk_rows, EncodedRows, DEFLATE_LEVEL};
use super::direct::FileImage;
use super::memory_file::MemoryFile;
use super::record::{Outcome, Rejections, Sample, SampleKind};
use crate::digest::sha256_bytes;
use crate::error::{Error, Result};
use hdf5::types::VarLenUnicode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;

/// The chunk filter; h5py reads every one without plugins. `shuffle-lzf` is the default:
/// lzf alone finds almost nothing to repeat in f32 series (a shard's series were stored at
/// their raw size), while after HDF5's byte shuffle it saves 13% at lzf's speed, about 3×
/// deflate's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    ShuffleLzf,
    Lzf,
    Gzip,
    ShuffleGzip,
    None,
}

impl Compression {
    /// Whether HDF5's byte shuffle runs before the coder.
    pub fn shuffles(self) -> bool {
        matches!(self, Compression::ShuffleLzf | Compression::ShuffleGzip)
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "shuffle-lzf" => Ok(Compression::ShuffleLzf),
            "lzf" => Ok(Compression::Lzf),
            "gzip" => Ok(Compression::Gzip),
            "shuffle-gzip" => Ok(Compression::ShuffleGzip),
            "none" => Ok(Compression::None),
            _ => Err(format!(
                "unknown compression '{s}' (shuffle-lzf, lzf, gzip, shuffle-gzip, none)"
            )),
        }
    }
}

pub fn shard_file_name(index: u64) -> String {
    format!("shard-{index:06}.h5")
}

/// What a shard records about the corpus it belongs to.
pub struct ShardMeta {
    pub seed: u64,
    pub config_json: String,
    pub layout: ShardLayout,
}

fn h5err(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
    move |e| Error::hdf5(path, e)
}

/// How the series datasets of every shard are laid out.
#[derive(Clone, Copy, Debug)]
pub struct ShardLayout {
    pub length: usize,
    pub compression: Compression,
}

/// A shard ready to be written: the outcomes of its ids, flattened into the datasets, with
/// the bulky series already compressed (see `chunks`).
pub struct PackedShard {
    pub failed: u64,
    pub rejections: Rejections,
    inputs: EncodedRows,
    outputs: EncodedRows,
    input_offsets: Vec<u64>,
    output_offsets: Vec<u64>,
    symbols: Vec<VarLenUnicode>,
    sample_id: Vec<u64>,
    kind: Vec<u8>,
    ode_system: Vec<u8>,
    input_method: Vec<u8>,
    rejected: Vec<u32>,
}

impl PackedShard {
    /// Packs the outcomes of a shard's ids (in id order); call it on the generating pool, which
    /// then does the compression.
    pub fn pack(outcomes: &[Outcome], layout: ShardLayout) -> Result<PackedShard> {
        let mut failed = 0u64;
        let mut rejections = Rejections::default();
        let mut samples = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Outcome::Accepted(s, r) => {
                    rejections.add(r);
                    samples.push(s);
                }
                Outcome::Failed { rejections: r, .. } => {
                    failed += 1;
                    rejections.add(r);
                }
            }
        }
        let mut input_offsets = vec![0u64];
        let mut output_offsets = vec![0u64];
        let mut symbols = Vec::new();
        let mut input_method = Vec::new();
        for s in &samples {
            // Rows are laid into chunks by position, so one of another length would shift
            // every row after it.
            if s.inputs
                .iter()
                .chain(&s.outputs)
                .any(|r| r.len() != layout.length)
            {
                return Err(Error::Other(format!(
                    "sample {} has a series whose length is not the corpus length {}",
                    s.id, layout.length
                )));
            }
            input_offsets.push(input_offsets.last().unwrap() + s.inputs.len() as u64);
            output_offsets.push(output_offsets.last().unwrap() + s.outputs.len() as u64);
            input_method.extend_from_slice(&s.input_methods);
            for sym in &s.symbols {
                symbols.push(sym.parse::<VarLenUnicode>().map_err(|e| {
                    Error::Other(format!("symbol of sample {} is not storable: {e}", s.id))
                })?);
            }
        }
        let rows = |pick: fn(&Sample) -> &Vec<Vec<f32>>| -> Vec<&[f32]> {
            samples
                .iter()
                .flat_map(|s| pick(s).iter().map(|r| r.as_slice()))
                .collect()
        };
        let (len, c) = (layout.length, layout.compression);
        Ok(PackedShard {
            failed,
            rejections,
            inputs: EncodedRows::encode(&rows(|s| &s.inputs), len, c),
            outputs: EncodedRows::encode(&rows(|s| &s.outputs), len, c),
            input_offsets,
            output_offsets,
            symbols,
            sample_id: samples.iter().map(|s| s.id).collect(),
            kind: samples.iter().map(|s| s.kind as u8).collect(),
            ode_system: samples.iter().map(|s| s.ode_system).collect(),
            input_method,
            rejected: samples.iter().map(|s| s.rejected).collect(),
        })
    }

    pub fn samples(&self) -> u64 {
        self.sample_id.len() as u64
    }

    /// A little over the size of this shard's file: the encoded series, the symbols, the small
    /// datasets and HDF5's structures, plus the 1 MiB steps its in-memory file grows by.
    /// Reserved before the file is built, so that a first image is not copied as it grows
    /// (measured 0.95-1.02 MiB over, on shards of 1,000 ids of all four presets).
    fn file_bytes_estimate(&self) -> usize {
        let series = |rows: &EncodedRows| rows.chunks.iter().map(|c| c.bytes.len()).sum::<usize>();
        // A symbol is its text in the global heap behind a 16-byte header; 64 bytes a sample
        // stand for the small datasets and the symbols' references, and the last MiB for
        // the rest and the driver's rounding up to whole MiB.
        let symbols: usize = self.symbols.iter().map(|s| s.len() + 16).sum();
        series(&self.inputs)
            + series(&self.outputs)
            + symbols
            + 64 * self.sample_id.len()
            + (1 << 20)
    }
}

/// A dataset builder with the shard's filter and `chunk` shape; empty datasets are stored
/// contiguous (HDF5 cannot chunk a zero-sized fixed dimension).
fn dataset_builder<T: hdf5::H5Type>(
    file: &hdf5::File,
    shape: &[usize],
    chunk: &[usize],
    compression: Compression,
) -> hdf5::DatasetBuilderEmptyShape {
    let mut builder = file.new_dataset::<T>().shape(shape);
    if shape.iter().all(|&d| d > 0) {
        builder = builder.chunk(chunk);
        if compression.shuffles() {
            builder = builder.shuffle();
        }
        builder = match compression {
            Compression::ShuffleLzf | Compression::Lzf => builder.lzf(),
            Compression::ShuffleGzip | Compression::Gzip => builder.deflate(DEFLATE_LEVEL),
            Compression::None => builder,
        };
    }
    builder
}

/// A 1-D dataset, filtered by HDF5 itself (these arrays are a few bytes per sample).
fn write_dataset<T: hdf5::H5Type>(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    data: &[T],
    compression: Compression,
) -> Result<()> {
    let n = data.len();
    let chunk = chunk_rows(std::mem::size_of::<T>(), n);
    let ds = dataset_builder::<T>(file, &[n], &[chunk], compression)
        .create(name)
        .map_err(h5err(path))?;
    if n > 0 {
        ds.write_raw(data).map_err(h5err(path))?;
    }
    Ok(())
}

/// A 2-D series dataset from its encoded chunks, by direct chunk writes.
fn write_rows(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    rows: &EncodedRows,
    compression: Compression,
) -> Result<()> {
    let shape = [rows.rows, rows.row_len];
    let chunk = [rows.chunk_rows, rows.row_len];
    let ds = dataset_builder::<f32>(file, &shape, &chunk, compression)
        .create(name)
        .map_err(h5err(path))?;
    for (k, c) in rows.chunks.iter().enumerate() {
        let offset: [u64; 2] = [(k * rows.chunk_rows) as u64, 0];
        // SAFETY: the dataset is open and chunked with `chunk`, `offset` names one of its
        // chunks, and `c.bytes` holds that chunk after the dataset's filters (or with the
        // skipped ones masked), as HDF5 requires. The library lock serialises the call.
        let status = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5d::H5Dwrite_chunk(
                ds.id(),
                hdf5_sys::h5p::H5P_DEFAULT,
                c.filter_mask,
                offset.as_ptr(),
                c.bytes.len(),
                c.bytes.as_ptr().cast(),
            )
        });
        if status < 0 {
            return Err(Error::Other(format!(
                "{}: cannot write chunk {k} of dataset '{name}'",
                path.display()
            )));
        }
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

/// A shard written under its temporary name: complete, but neither durable nor visible yet.
#[derive(Debug)]
pub struct StagedShard {
    pub index: u64,
    pub samples: u64,
    pub failed: u64,
    pub rejections: Rejections,
    /// The file's size and checksum, taken from its image in memory.
    pub bytes: u64,
    pub sha256: String,
    tmp: PathBuf,
}

/// The CPU-bound part of storing shard `index` in `dir`: builds its file in `image` (whose
/// memory the caller reuses from shard to shard), takes its checksum and writes it under a
/// temporary name (past the page cache where the filesystem allows, see `direct`). It runs
/// on the generating pool, so that the one writer thread is left with waits (fsync) and the
/// manifest.
pub fn stage_shard(
    dir: &Path,
    index: u64,
    shard: &PackedShard,
    meta: &ShardMeta,
    image: &mut FileImage,
) -> Result<StagedShard> {
    let tmp = dir.join(format!("{}.tmp", shard_file_name(index)));
    shard_image(&tmp, shard, meta, image)?;
    let image = &*image;
    // The device reads the image while this thread checksums it: a direct write leaves its
    // thread waiting for the transfer, and a thread of its own waits instead of the pool's.
    let (written, sha256) = std::thread::scope(|scope| {
        let writing = std::thread::Builder::new()
            .name("s2kit-shard-write".into())
            .spawn_scoped(scope, || image.write_file(&tmp));
        let sha256 = sha256_bytes(image.bytes());
        let written = writing.and_then(|w| {
            w.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread panicked")))
        });
        (written, sha256)
    });
    written.map_err(|e| Error::io(&tmp, e))?;
    Ok(StagedShard {
        index,
        samples: shard.samples(),
        failed: shard.failed,
        rejections: shard.rejections,
        bytes: image.bytes().len() as u64,
        sha256,
        tmp,
    })
}

impl StagedShard {
    /// Makes the shard durable and then visible under its final name in `dir`.
    pub fn publish(&self, dir: &Path) -> Result<PathBuf> {
        let final_path = dir.join(shard_file_name(self.index));
        std::fs::File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &final_path).map_err(|e| Error::io(&final_path, e))?;
        Ok(final_path)
    }
}

/// Builds the bytes of a shard file in `image`, with HDF5 in memory (its core driver, no
/// backing file; the bytes are the same as its default driver writes). `name` only names it
/// in errors.
fn shard_image(
    name: &Path,
    shard: &PackedShard,
    meta: &ShardMeta,
    image: &mut FileImage,
) -> Result<()> {
    let file = MemoryFile::create(name, image, shard.file_bytes_estimate())?;
    let c = meta.layout.compression;
    write_rows(&file, name, "inputs", &shard.inputs, c)?;
    write_rows(&file, name, "outputs", &shard.outputs, c)?;
    write_dataset(&file, name, "input_offsets", &shard.input_offsets, c)?;
    write_dataset(&file, name, "output_offsets", &shard.output_offsets, c)?;
    write_dataset(&file, name, "symbols", &shard.symbols, c)?;
    write_dataset(&file, name, "sample_id", &shard.sample_id, c)?;
    write_dataset(&file, name, "kind", &shard.kind, c)?;
    write_dataset(&file, name, "ode_system", &shard.ode_system, c)?;
    write_dataset(&file, name, "input_method", &shard.input_method, c)?;
    write_dataset(&file, name, "rejected", &shard.rejected, c)?;
    write_attr(&file, name, "format_version", &FORMAT_VERSION)?;
    write_attr(&file, name, "seed", &meta.seed)?;
    write_attr(&file, name, "length", &(meta.layout.length as u64))?;
    write_attr(&file, name, "failed", &shard.failed)?;
    let config: VarLenUnicode = meta
        .config_json
        .parse()
        .map_err(|e| Error::Other(format!("config JSON is not storable: {e}")))?;
    write_attr(&file, name, "config", &config)?;
    file.finish()
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Two samples: constant rows (every filter shrinks them) beside random ones (none does),
    /// over more than one chunk of rows, with the last chunk part-filled.
    fn samples(len: usize) -> Vec<Outcome> {
        let mut rng = crate::rng::sample_rng(4, 0);
        let mut row = |noisy: bool| -> Vec<f32> {
            (0..len)
                .map(|_| if noisy { rng.random::<f32>() } else { 1.5 })
                .collect()
        };
        (0..2u64)
            .map(|id| {
                let sample = Sample {
                    id,
                    kind: SampleKind::Explicit,
                    ode_system: 255,
                    inputs: (0..700).map(|r| row(r % 2 == 0)).collect(),
                    input_methods: vec![1; 700],
                    outputs: vec![row(id == 0), row(false)],
                    symbols: vec!["x0".into(), "(x0 + 1)".into()],
                    rejected: 3,
                };
                Outcome::Accepted(sample, Rejections::default())
            })
            .collect()
    }

    #[test]
    fn shards_read_back_exactly_under_every_filter() {
        let len = 256; // 512 rows per chunk: 1,400 input rows fill two chunks and part of a third
        let outcomes = samples(len);
        let dir = tempfile::tempdir().unwrap();
        for compression in [
            Compression::ShuffleLzf,
            Compression::Lzf,
            Compression::Gzip,
            Compression::ShuffleGzip,
            Compression::None,
        ] {
            let layout = ShardLayout {
                length: len,
                compression,
            };
            let packed = PackedShard::pack(&outcomes, layout).unwrap();
            assert_eq!(packed.inputs.chunks.len(), 3);
            let meta = ShardMeta {
                seed: 4,
                config_json: "{}".into(),
                layout,
            };
            let staged =
                stage_shard(dir.path(), 0, &packed, &meta, &mut FileImage::default()).unwrap();
            let path = staged.publish(dir.path()).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len() as u64, staged.bytes);
            assert_eq!(sha256_bytes(&bytes), staged.sha256);
            let data = read_shard(&path).unwrap();
            for (i, outcome) in outcomes.iter().enumerate() {
                let Outcome::Accepted(want, _) = outcome else {
                    unreachable!()
                };
                assert_eq!(&data.sample(i), want, "{compression:?}");
            }
        }
    }
}
