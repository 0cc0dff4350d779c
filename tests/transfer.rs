//! The transfer harness on a small synthetic problem that a working model must solve.

use s2kit::model::{save_encoder, EncoderConfig, FcnConfig};
use s2kit::transfer::{run_transfer, FitConfig, ModelSpec, Protocol, TransferRequest};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Two classes told apart by frequency (2 vs 6 cycles), with random phase and noise.
fn write_split(path: &Path, cases: usize, seed: u64) {
    let mut text = String::from("@problemName Waves\n@timeStamps false\n@missing false\n@univariate true\n@equalLength true\n@seriesLength 32\n@classLabel true slow fast\n@data\n");
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..cases {
        let (label, cycles) = if i % 2 == 0 {
            ("slow", 2.0)
        } else {
            ("fast", 6.0)
        };
        let phase = next() * std::f64::consts::TAU;
        let values: Vec<String> = (0..32)
            .map(|t| {
                let v = (cycles * std::f64::consts::TAU * t as f64 / 32.0 + phase).sin()
                    + 0.3 * (next() - 0.5);
                format!("{v:.4}")
            })
            .collect();
        writeln!(text, "{}:{label}", values.join(",")).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn dataset(root: &Path) -> PathBuf {
    let dir = root.join("Waves");
    std::fs::create_dir_all(&dir).unwrap();
    write_split(&dir.join("Waves_TRAIN.ts"), 40, 1);
    write_split(&dir.join("Waves_TEST.ts"), 40, 2);
    dir
}

fn small_fcn(root: &Path) -> PathBuf {
    // A saved encoder directory whose weights are never loaded under `scratch`.
    let dir = root.join("small-fcn");
    let cfg = EncoderConfig::Fcn(FcnConfig {
        filters: [32, 64, 32],
        kernels: [8, 5, 3],
    });
    let varmap = candle_nn::VarMap::new();
    cfg.build(&varmap, &candle_core::Device::Cpu).unwrap();
    save_encoder(&dir, &cfg, &varmap).unwrap();
    dir
}

fn request(data: PathBuf, model: ModelSpec, protocol: Protocol) -> TransferRequest {
    TransferRequest {
        dataset: data,
        model,
        protocol,
        seeds: 2,
        fit: FitConfig {
            max_epochs: 40,
            batch_size: 8,
            ..FitConfig::default()
        },
        val_fraction: 0.25,
        save_encoder: None,
        device: candle_core::Device::Cpu,
    }
}

#[test]
fn fcn_learns_a_separable_problem_and_its_encoder_transfers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let mut req = request(
        data.clone(),
        ModelSpec::Saved(small_fcn(tmp.path())),
        Protocol::Scratch,
    );
    let trained = tmp.path().join("trained");
    req.save_encoder = Some(trained.clone());
    let scratch = run_transfer(&req, &|_| {}).unwrap();
    assert!(
        scratch.accuracy_mean >= 0.9,
        "scratch accuracy {}",
        scratch.accuracy_mean
    );
    assert_eq!(scratch.seeds.len(), 2);
    assert_eq!(
        scratch
            .per_class
            .iter()
            .map(|c| c.test_cases)
            .sum::<usize>(),
        40
    );

    // The same seed gives the same result: initial weights come from the seed's stream.
    let again = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(again.seeds[0].scores, scratch.seeds[0].scores);
    assert_eq!(again.seeds[0].fit, scratch.seeds[0].fit);

    for protocol in [Protocol::Linear, Protocol::Finetune] {
        let report = run_transfer(
            &request(data.clone(), ModelSpec::Saved(trained.clone()), protocol),
            &|_| {},
        )
        .unwrap();
        assert!(
            report.accuracy_mean >= 0.9,
            "{protocol:?} accuracy {}",
            report.accuracy_mean
        );
    }
}

#[test]
fn protocols_that_need_a_pretrained_encoder_refuse_fcn() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run_transfer(
        &request(dataset(tmp.path()), ModelSpec::Fcn, Protocol::Linear),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pretrained encoder"), "{err}");
    let err = run_transfer(
        &request(
            tmp.path().join("nowhere"),
            ModelSpec::Fcn,
            Protocol::Scratch,
        ),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nowhere_TRAIN.ts"), "{err}");
}
