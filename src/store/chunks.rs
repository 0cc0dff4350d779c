//! The chunks of a shard's series datasets, compressed by the threads that generated them.
//!
//! HDF5 runs a dataset's filters in the calling thread, so with the filter pipeline one writer
//! thread compressed every byte of the corpus, and generation stopped scaling once that
//! thread was busy (at 2 threads it was busy half the wall time). Here each chunk is laid out
//! and compressed exactly as the dataset's filters would do it, on the rayon pool, and the
//! writer only hands the finished bytes to `H5Dwrite_chunk`. The datasets still declare the
//! same filters, so h5py reads them with no plugin.

use super::shard::Compression;
use rayon::prelude::*;
use std::io::Write;

/// Target bytes per chunk: big enough to compress well, small enough for h5py's 1 MiB cache.
const CHUNK_BYTES: usize = 512 * 1024;

/// The deflate level of the gzip modes.
pub const DEFLATE_LEVEL: u8 = 4;

/// Rows per chunk for rows of `row_bytes` bytes, in a dataset of `rows` rows.
pub fn chunk_rows(row_bytes: usize, rows: usize) -> usize {
    (CHUNK_BYTES / row_bytes.max(1)).clamp(1, rows.max(1))
}

/// One stored chunk: its bytes after the filters, and HDF5's filter mask (bit i set: filter
/// i of the pipeline was skipped, as an optional filter is when it cannot shrink the data).
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub filter_mask: u32,
}

/// A 2-D f32 dataset (`rows` × `row_len`) as its encoded chunks, in row order.
pub struct EncodedRows {
    pub rows: usize,
    pub row_len: usize,
    pub chunk_rows: usize,
    pub chunks: Vec<Chunk>,
}

impl EncodedRows {
    /// Encodes `rows` (each `row_len` long, which the caller checks) in parallel on the current
    /// rayon pool. The last chunk is padded with zeros, HDF5's fill value, as the library pads
    /// an edge chunk.
    pub fn encode(rows: &[&[f32]], row_len: usize, compression: Compression) -> EncodedRows {
        let chunk_rows = chunk_rows(row_len * 4, rows.len());
        let chunks = rows
            .par_chunks(chunk_rows)
            .map(|group| {
                let mut raw = Vec::with_capacity(chunk_rows * row_len * 4);
                for row in group {
                    row.iter()
                        .for_each(|v| raw.extend_from_slice(&v.to_le_bytes()));
                }
                raw.resize(chunk_rows * row_len * 4, 0);
                encode_chunk(raw, compression, 4)
            })
            .collect();
        EncodedRows {
            rows: rows.len(),
            row_len,
            chunk_rows,
            chunks,
        }
    }
}

/// Applies the dataset's filters to one chunk of `elem_size`-byte elements, as HDF5 would.
fn encode_chunk(raw: Vec<u8>, compression: Compression, elem_size: usize) -> Chunk {
    match compression {
        Compression::None => Chunk {
            bytes: raw,
            filter_mask: 0,
        },
        Compression::Lzf => lzf_or_raw(raw, 0b1),
        Compression::Gzip => deflate_or_raw(raw, 0b1),
        // These pipelines are shuffle (filter 0), then the coder (filter 1).
        Compression::ShuffleLzf => lzf_or_raw(shuffle(&raw, elem_size), 0b10),
        Compression::ShuffleGzip => deflate_or_raw(shuffle(&raw, elem_size), 0b10),
    }
}

/// lzf into a buffer no larger than the input, as the lzf filter does; data that does not
/// shrink is stored as it is, with the filter's bit set.
fn lzf_or_raw(raw: Vec<u8>, skipped_bit: u32) -> Chunk {
    let mut out = vec![0u8; raw.len()];
    // SAFETY: both buffers are valid for the lengths passed; lzf writes at most `out.len()`
    // bytes and returns 0 when the result would not fit.
    let n = unsafe {
        lzf_sys::lzf_compress(
            raw.as_ptr().cast(),
            raw.len() as u32,
            out.as_mut_ptr().cast(),
            out.len() as u32,
        )
    } as usize;
    if n == 0 {
        return Chunk {
            bytes: raw,
            filter_mask: skipped_bit,
        };
    }
    out.truncate(n);
    Chunk {
        bytes: out,
        filter_mask: 0,
    }
}

/// A zlib stream, which is what HDF5's deflate filter stores. Data that would not shrink is
/// stored as it is, with the (optional) filter marked skipped; readers see no difference.
fn deflate_or_raw(raw: Vec<u8>, skipped_bit: u32) -> Chunk {
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(raw.len() / 2),
        flate2::Compression::new(DEFLATE_LEVEL as u32),
    );
    let out = encoder
        .write_all(&raw)
        .and_then(|()| encoder.finish())
        .expect("writing to memory cannot fail");
    if out.len() >= raw.len() {
        return Chunk {
            bytes: raw,
            filter_mask: skipped_bit,
        };
    }
    Chunk {
        bytes: out,
        filter_mask: 0,
    }
}

/// HDF5's shuffle filter: byte j of every element, for j = 0..elem_size, stored together.
fn shuffle(raw: &[u8], elem_size: usize) -> Vec<u8> {
    let n = raw.len() / elem_size;
    let mut out = vec![0u8; raw.len()];
    for (j, plane) in out.chunks_mut(n).take(elem_size).enumerate() {
        for (i, b) in plane.iter_mut().enumerate() {
            *b = raw[i * elem_size + j];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Constant rows, which every filter shrinks.
    fn rows(n: usize, len: usize) -> Vec<Vec<f32>> {
        (0..n).map(|i| vec![(i % 5) as f32; len]).collect()
    }

    #[test]
    fn chunks_cover_every_row_and_pad_the_last() {
        let data = rows(1500, 256); // 512 rows per chunk: 3 chunks, the last 476 rows short
        let refs: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
        let e = EncodedRows::encode(&refs, 256, Compression::None);
        assert_eq!((e.rows, e.chunk_rows, e.chunks.len()), (1500, 512, 3));
        let last = &e.chunks[2].bytes;
        assert_eq!(last.len(), 512 * 256 * 4);
        let first_pad = (1500 - 1024) * 256 * 4;
        assert_eq!(&last[..4], &data[1024][0].to_le_bytes());
        assert!(last[first_pad..].iter().all(|&b| b == 0));
    }

    #[test]
    fn each_filter_inverts() {
        let data = rows(40, 64);
        let refs: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
        let plain = EncodedRows::encode(&refs, 64, Compression::None);
        let raw = &plain.chunks[0].bytes;
        let shuffled = shuffle(raw, 4);
        // Unshuffle by hand: the planes are n bytes each.
        let n = raw.len() / 4;
        let back: Vec<u8> = (0..raw.len())
            .map(|k| shuffled[(k % 4) * n + k / 4])
            .collect();
        assert_eq!(&back, raw);

        for c in [Compression::Gzip, Compression::ShuffleGzip] {
            let chunk = &EncodedRows::encode(&refs, 64, c).chunks[0];
            assert_eq!(chunk.filter_mask, 0);
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&chunk.bytes[..])
                .read_to_end(&mut inflated)
                .unwrap();
            let want = if c == Compression::Gzip {
                raw
            } else {
                &shuffled
            };
            assert_eq!(&inflated, want);
        }

        let chunk = &EncodedRows::encode(&refs, 64, Compression::Lzf).chunks[0];
        assert_eq!(chunk.filter_mask, 0);
        assert!(chunk.bytes.len() < raw.len());
        let mut out = vec![0u8; raw.len()];
        let n = unsafe {
            lzf_sys::lzf_decompress(
                chunk.bytes.as_ptr().cast(),
                chunk.bytes.len() as u32,
                out.as_mut_ptr().cast(),
                out.len() as u32,
            )
        };
        assert_eq!(n as usize, raw.len());
        assert_eq!(&out, raw);
    }

    #[test]
    fn incompressible_chunks_are_stored_raw_with_the_filter_skipped() {
        // Random bytes do not shrink under lzf or deflate.
        let mut rng = crate::rng::sample_rng(0, 0);
        let noise: Vec<u8> = (0..4096).map(|_| rand::Rng::random(&mut rng)).collect();
        let lzf = lzf_or_raw(noise.clone(), 0b1);
        assert_eq!((lzf.filter_mask, &lzf.bytes), (0b1, &noise));
        let gz = deflate_or_raw(noise.clone(), 0b10);
        assert_eq!((gz.filter_mask, &gz.bytes), (0b10, &noise));
    }
}
