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
    /// rayon pool, `chunk_rows` rows to a chunk; the last chunk is padded (see `lay_out`).
    pub fn encode(rows: &[&[f32]], row_len: usize, compression: Compression) -> EncodedRows {
        let chunk_rows = chunk_rows(row_len * VALUE_BYTES, rows.len());
        let chunks = rows
            .par_chunks(chunk_rows)
            .map(|group| encode_chunk(group, chunk_rows * row_len, compression))
            .collect();
        EncodedRows {
            rows: rows.len(),
            row_len,
            chunk_rows,
            chunks,
        }
    }
}

/// Bytes per stored value (f32).
const VALUE_BYTES: usize = 4;

/// Applies the dataset's filters to one chunk of `values` values (the rows of `group`, then
/// zeros), as HDF5 would.
fn encode_chunk(group: &[&[f32]], values: usize, compression: Compression) -> Chunk {
    let bytes = lay_out(group, values, compression.shuffles());
    match compression {
        Compression::None => Chunk {
            bytes,
            filter_mask: 0,
        },
        Compression::Lzf => lzf_or_raw(bytes, 0b1),
        Compression::Gzip => deflate_or_raw(bytes, 0b1),
        // These pipelines are shuffle (filter 0), then the coder (filter 1).
        Compression::ShuffleLzf => lzf_planes_or_raw(bytes, VALUE_BYTES, 0b10),
        Compression::ShuffleGzip => deflate_or_raw(bytes, 0b10),
    }
}

/// A chunk's bytes as its coder receives them: the values of `group` in little-endian order,
/// zero-padded to `values` (HDF5's fill value, with which the library pads an edge chunk).
/// With `shuffled`, byte j of every value is stored together, plane after plane, as HDF5's
/// shuffle filter lays them out; done here, while the values are read, it costs no extra
/// pass over the chunk.
fn lay_out(group: &[&[f32]], values: usize, shuffled: bool) -> Vec<u8> {
    let mut out = vec![0u8; values * VALUE_BYTES];
    let all = group.iter().flat_map(|row| row.iter());
    if shuffled {
        let (p0, rest) = out.split_at_mut(values);
        let (p1, rest) = rest.split_at_mut(values);
        let (p2, p3) = rest.split_at_mut(values);
        let planes = p0.iter_mut().zip(p1).zip(p2).zip(p3);
        for (v, (((b0, b1), b2), b3)) in all.zip(planes) {
            [*b0, *b1, *b2, *b3] = v.to_le_bytes();
        }
    } else {
        for (v, dst) in all.zip(out.chunks_exact_mut(VALUE_BYTES)) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// lzf into a buffer no larger than the input, as the lzf filter does; data that does not
/// shrink is stored as it is, with the filter's bit set.
fn lzf_or_raw(raw: Vec<u8>, skipped_bit: u32) -> Chunk {
    coded_or_raw(raw, skipped_bit, lzf_into)
}

/// `raw` coded by `code` into a buffer of its own size, or `raw` as it is with the filter's
/// bit set when the code does not fit.
fn coded_or_raw(
    raw: Vec<u8>,
    skipped_bit: u32,
    code: impl FnOnce(&[u8], &mut [u8]) -> Option<usize>,
) -> Chunk {
    let mut out = vec![0u8; raw.len()];
    match code(&raw, &mut out) {
        Some(n) => {
            out.truncate(n);
            Chunk {
                bytes: out,
                filter_mask: 0,
            }
        }
        None => Chunk {
            bytes: raw,
            filter_mask: skipped_bit,
        },
    }
}

/// Bytes lzf is tried on at the start of each byte plane, to tell planes it can shrink from
/// planes of noise.
const LZF_PROBE: usize = 4096;

/// The longest literal run an lzf stream can hold.
const LZF_MAX_LITERAL: usize = 32;

/// lzf of a shuffled chunk, one byte plane at a time. The low mantissa bytes of f32 series are
/// noise: lzf cannot shrink them but spends most of its time failing to (it runs at about a
/// third of the speed it reaches on the exponent plane). A plane on which lzf does not shrink
/// its first `LZF_PROBE` bytes is written as lzf literal runs, which is what lzf itself would
/// have emitted for noise. The zero bytes that end a plane (the padding rows of a dataset's
/// last chunk) are coded on their own, so a noisy plane does not write them as literals.
/// lzf streams hold no header and back-references stay inside the stream that made them, so
/// the pieces laid end to end are one valid lzf stream of the whole chunk, and the filter
/// decodes it as usual.
fn lzf_planes_or_raw(shuffled: Vec<u8>, elem_size: usize, skipped_bit: u32) -> Chunk {
    coded_or_raw(shuffled, skipped_bit, |shuffled, out| {
        if shuffled.is_empty() {
            return None;
        }
        let mut used = 0;
        for plane in shuffled.chunks(shuffled.len() / elem_size) {
            let body_len = plane.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let (body, zeros) = plane.split_at(body_len);
            if !body.is_empty() {
                used += lzf_probed_into(body, &mut out[used..])?;
            }
            if !zeros.is_empty() {
                used += lzf_into(zeros, &mut out[used..])?;
            }
        }
        Some(used)
    })
}

/// lzf of `input` into `out`, or literal runs when lzf does not shrink the first
/// `LZF_PROBE` bytes: the bytes written, or `None` when they do not fit.
fn lzf_probed_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let head = &input[..input.len().min(LZF_PROBE)];
    let mut probe = [0u8; LZF_PROBE];
    let shrinks = lzf_into(head, &mut probe[..head.len()]).is_some_and(|n| n < head.len());
    if shrinks {
        lzf_into(input, out)
    } else {
        lzf_literals_into(input, out)
    }
}

/// lzf of `input` into `out`: the bytes written, or `None` when the result does not fit.
fn lzf_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    if input.is_empty() || out.is_empty() {
        return None;
    }
    // SAFETY: both buffers are valid for the lengths passed; lzf writes at most `out.len()`
    // bytes and returns 0 when the result would not fit.
    let n = unsafe {
        lzf_sys::lzf_compress(
            input.as_ptr().cast(),
            input.len() as u32,
            out.as_mut_ptr().cast(),
            out.len() as u32,
        )
    };
    (n > 0).then_some(n as usize)
}

/// `input` as lzf literal runs (a length byte, then up to 32 bytes as they are) into `out`:
/// the bytes written, or `None` when they do not fit.
fn lzf_literals_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let needed = input.len() + input.len().div_ceil(LZF_MAX_LITERAL);
    if needed > out.len() {
        return None;
    }
    let mut at = 0;
    for run in input.chunks(LZF_MAX_LITERAL) {
        out[at] = (run.len() - 1) as u8;
        out[at + 1..at + 1 + run.len()].copy_from_slice(run);
        at += 1 + run.len();
    }
    Some(at)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// HDF5's shuffle filter, the reference `lay_out` is checked against: byte j of every
    /// element, for j = 0..elem_size, stored together.
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

        for c in [Compression::Lzf, Compression::ShuffleLzf] {
            let chunk = &EncodedRows::encode(&refs, 64, c).chunks[0];
            assert_eq!(chunk.filter_mask, 0);
            assert!(chunk.bytes.len() < raw.len());
            let want = if c == Compression::Lzf {
                raw
            } else {
                &shuffled
            };
            assert_eq!(&unlzf(&chunk.bytes, raw.len()), want);
        }
    }

    /// The lzf filter's decoder, with the chunk's size known.
    fn unlzf(bytes: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: both buffers are valid for the lengths passed.
        let n = unsafe {
            lzf_sys::lzf_decompress(
                bytes.as_ptr().cast(),
                bytes.len() as u32,
                out.as_mut_ptr().cast(),
                out.len() as u32,
            )
        };
        assert_eq!(n as usize, len, "the stream decodes to the whole chunk");
        out
    }

    /// Rows like generated series: smooth values whose low mantissa bytes are noise.
    fn series_rows(n: usize, len: usize) -> Vec<Vec<f32>> {
        let mut rng = crate::rng::sample_rng(1, 0);
        (0..n)
            .map(|i| {
                (0..len)
                    .map(|t| {
                        let noise: f64 = rand::Rng::random(&mut rng);
                        ((t as f64 * 0.1 + i as f64).sin() * 50.0 + noise) as f32
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn plane_wise_lzf_is_one_lzf_stream_as_small_as_lzf_of_the_whole_chunk() {
        // 512 rows fill one chunk; 600 leave a last chunk of 88 rows and 424 rows of padding.
        for n_rows in [512, 600] {
            let data = series_rows(n_rows, 256);
            let refs: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
            let plain = EncodedRows::encode(&refs, 256, Compression::None);
            let raw = &plain.chunks.last().unwrap().bytes;
            let shuffled = shuffle(raw, 4);
            let chunks = EncodedRows::encode(&refs, 256, Compression::ShuffleLzf).chunks;
            let chunk = chunks.last().unwrap();
            assert_eq!(chunk.filter_mask, 0);
            assert_eq!(unlzf(&chunk.bytes, raw.len()), shuffled);
            let whole = lzf_or_raw(shuffled.clone(), 0b10);
            assert_eq!(whole.filter_mask, 0);
            // Some planes compress and some are noise, so both paths ran; the result is within
            // 0.5% of lzf over the whole chunk, padding or not.
            assert!(chunk.bytes.len() < raw.len() * 9 / 10);
            let ratio = chunk.bytes.len() as f64 / whole.bytes.len() as f64;
            assert!((0.995..1.005).contains(&ratio), "{n_rows} rows: {ratio}");
            // The lowest plane's rows are noise: written as literal runs, 33 bytes for every 32.
            let n = (n_rows - 512 * (chunks.len() - 1)) * 256;
            let mut literal = vec![0u8; n + n / 32];
            assert_eq!(
                lzf_literals_into(&shuffled[..n], &mut literal),
                Some(n + n / 32)
            );
            assert_eq!(&chunk.bytes[..literal.len()], &literal[..]);
        }
    }

    #[test]
    fn incompressible_chunks_are_stored_raw_with_the_filter_skipped() {
        // Random bytes do not shrink under lzf or deflate.
        let mut rng = crate::rng::sample_rng(0, 0);
        let noise: Vec<u8> = (0..4096).map(|_| rand::Rng::random(&mut rng)).collect();
        let lzf = lzf_or_raw(noise.clone(), 0b1);
        assert_eq!((lzf.filter_mask, &lzf.bytes), (0b1, &noise));
        let planes = lzf_planes_or_raw(noise.clone(), 4, 0b10);
        assert_eq!((planes.filter_mask, &planes.bytes), (0b10, &noise));
        let gz = deflate_or_raw(noise.clone(), 0b10);
        assert_eq!((gz.filter_mask, &gz.bytes), (0b10, &noise));
    }
}
