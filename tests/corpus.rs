//! Corpus-level properties: determinism across threads, shard sizes and workers; resume after
//! a crash; the HDF5 layout that h5py users rely on.

mod common;

use common::{generate, request, samples_by_id};
use s2kit::generate::generate_corpus;
use s2kit::store::{merge, read_shard, Corpus, Manifest, MANIFEST};

#[test]
fn stored_series_are_identical_across_threads_shard_sizes_and_workers() {
    let root = tempfile::tempdir().unwrap();
    let reference = root.path().join("one-thread");
    generate(&request(&reference, 60, 60, 1));
    let expected = samples_by_id(&reference);
    assert!(
        expected.len() >= 55,
        "too many failures: {}",
        expected.len()
    );

    let two_threads = root.path().join("two-threads-shard-7");
    generate(&request(&two_threads, 60, 7, 2));
    assert_eq!(samples_by_id(&two_threads), expected);

    let split = root.path().join("three-workers");
    for worker in 0..3 {
        let mut req = request(&split, 60, 10, 2);
        req.worker = worker;
        req.workers = 3;
        generate(&req);
    }
    assert!(
        Corpus::open(&split).is_err(),
        "parts must be merged before reading"
    );
    let merged = merge(&split).unwrap();
    assert_eq!(merged.shards.len(), 6);
    assert_eq!(samples_by_id(&split), expected);
}

#[test]
fn shards_are_byte_identical_for_the_same_split() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    generate(&request(&a, 40, 20, 1));
    generate(&request(&b, 40, 20, 2));
    let (ma, mb) = (
        Manifest::load(&a.join(MANIFEST)).unwrap(),
        Manifest::load(&b.join(MANIFEST)).unwrap(),
    );
    assert_eq!(ma.shards, mb.shards, "same checksums, sizes and counts");
}

#[test]
fn resume_after_a_crash_completes_the_same_corpus() {
    let root = tempfile::tempdir().unwrap();
    let complete = root.path().join("complete");
    generate(&request(&complete, 50, 10, 2));

    // Simulate a crash: the manifest lists shards 0-2 only, shard 3 was renamed but not yet
    // listed, shard 4 is a half-written temporary, and listed shard 1 was corrupted on disk.
    let crashed = root.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    for f in std::fs::read_dir(&complete).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), crashed.join(f.file_name())).unwrap();
    }
    let mut m = Manifest::load(&crashed.join(MANIFEST)).unwrap();
    m.shards.truncate(3);
    m.save(&crashed.join(MANIFEST)).unwrap();
    std::fs::rename(
        crashed.join("shard-000004.h5"),
        crashed.join("shard-000004.h5.tmp"),
    )
    .unwrap();
    std::fs::write(crashed.join("shard-000004.h5.tmp"), b"partial").unwrap();
    std::fs::write(crashed.join("shard-000001.h5"), b"corrupted").unwrap();

    assert!(
        Corpus::open(&crashed).is_err(),
        "an unfinished corpus must not open"
    );
    let mut req = request(&crashed, 50, 10, 2);
    let fresh = generate_corpus(&req, &|_| {}).unwrap_err().to_string();
    assert!(fresh.contains("--resume"), "{fresh}");
    req.resume = true;
    let summary = generate_corpus(&req, &|_| {}).unwrap();
    assert_eq!(
        summary.shards_skipped, 2,
        "shards 0 and 2 kept; 1 failed its checksum"
    );
    assert_eq!(summary.shards_written, 3);
    assert_eq!(
        Manifest::load(&crashed.join(MANIFEST)).unwrap().shards,
        Manifest::load(&complete.join(MANIFEST)).unwrap().shards
    );
    assert_eq!(samples_by_id(&crashed), samples_by_id(&complete));
}

#[test]
fn resume_refuses_a_different_corpus() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c");
    generate(&request(&dir, 20, 10, 1));
    let mut req = request(&dir, 20, 10, 1);
    req.resume = true;
    req.seed = 12;
    let err = generate_corpus(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("different corpus"), "{err}");
}

#[test]
fn resume_refuses_shards_of_another_generator_revision() {
    // A manifest from before revisions were recorded reads as revision 1.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c");
    generate(&request(&dir, 20, 10, 1));
    let path = dir.join(MANIFEST);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest
        .as_object_mut()
        .unwrap()
        .remove("generator_revision");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let mut req = request(&dir, 20, 10, 1);
    req.resume = true;
    let err = generate_corpus(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("generator revision 1"), "{err}");
}

#[test]
fn shard_layout_is_what_h5py_readers_expect() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c");
    generate(&request(&dir, 30, 30, 1));
    let path = dir.join("shard-000000.h5");
    let file = hdf5::File::open(&path).unwrap();
    let n = file.dataset("sample_id").unwrap().shape()[0];
    let rows_in = file.dataset("inputs").unwrap().shape();
    let rows_out = file.dataset("outputs").unwrap().shape();
    assert_eq!(rows_in[1], 64);
    assert_eq!(rows_out[1], 64);
    for (name, dtype_size) in [
        ("inputs", 4),
        ("outputs", 4),
        ("input_offsets", 8),
        ("output_offsets", 8),
        ("sample_id", 8),
        ("kind", 1),
    ] {
        let ds = file.dataset(name).unwrap();
        assert_eq!(ds.dtype().unwrap().size(), dtype_size, "{name}");
        assert!(ds.is_chunked(), "{name} is chunked");
        let filters = format!("{:?}", ds.filters());
        assert!(filters.contains("LZF"), "{name}: {filters}");
    }
    assert_eq!(file.dataset("input_offsets").unwrap().shape(), vec![n + 1]);
    assert_eq!(file.dataset("symbols").unwrap().shape(), vec![rows_out[0]]);
    let sym_type = file
        .dataset("symbols")
        .unwrap()
        .dtype()
        .unwrap()
        .to_descriptor()
        .unwrap();
    assert_eq!(format!("{sym_type:?}"), "VarLenUnicode");
    assert_eq!(
        file.attr("format_version")
            .unwrap()
            .read_scalar::<u32>()
            .unwrap(),
        1
    );
    assert_eq!(file.attr("seed").unwrap().read_scalar::<u64>().unwrap(), 11);
    let config: hdf5::types::VarLenUnicode = file.attr("config").unwrap().read_scalar().unwrap();
    let parsed: s2kit::preset::GeneratorConfig = serde_json::from_str(config.as_str()).unwrap();
    assert_eq!(parsed, common::small_config());

    let data = read_shard(&path).unwrap();
    assert_eq!(data.n_samples(), n);
    assert!(
        data.kind.contains(&0) && data.kind.contains(&1),
        "both kinds present"
    );
}

#[test]
fn a_corrupt_shard_gives_an_error_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("shard-000000.h5");
    std::fs::write(&path, b"not hdf5 at all").unwrap();
    let err = read_shard(&path).unwrap_err().to_string();
    assert!(err.contains("shard-000000.h5"), "{err}");
}
