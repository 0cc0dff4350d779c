//! The transfer harness on a small synthetic problem that a working model must solve.

use s2kit::model::{save_encoder, EncoderConfig, FcnConfig, SeriesConfig, TransformerConfig};
use s2kit::transfer::{
    embed, run_transfer, EmbedRequest, FitConfig, Head, ModelSpec, Protocol, Selection,
    TransferRequest,
};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Two classes told apart by frequency (2 vs 6 cycles), with random phase and noise.
fn write_split(path: &Path, cases: usize, seed: u64) {
    write_waves(path, cases, seed, |slow| {
        if slow {
            (2.0, 0.0)
        } else {
            (6.0, 0.0)
        }
    });
}

/// Waves of `cycles` raised by `offset` for each class (`true`: the first), with random phase
/// and noise.
fn write_waves(path: &Path, cases: usize, seed: u64, class: impl Fn(bool) -> (f64, f64)) {
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
        let label = if i % 2 == 0 { "slow" } else { "fast" };
        let (cycles, offset) = class(i % 2 == 0);
        let phase = next() * std::f64::consts::TAU;
        let values: Vec<String> = (0..32)
            .map(|t| {
                let v = (cycles * std::f64::consts::TAU * t as f64 / 32.0 + phase).sin()
                    + 0.3 * (next() - 0.5)
                    + offset;
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
        folds: None,
        head: Head::Linear,
        save_encoder: None,
        overwrite: false,
        layer: None,
        choose_layer: false,
        levels: false,
        native: false,
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

    // The saved encoder is not overwritten without asking.
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    req.overwrite = true;

    // The same seed gives the same result: initial weights come from the seed's stream.
    let again = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(again.seeds[0].scores, scratch.seeds[0].scores);
    assert_eq!(again.seeds[0].selection, scratch.seeds[0].selection);

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

#[test]
fn a_batchnorm_head_refuses_batches_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(dataset(tmp.path()), ModelSpec::Fcn, Protocol::Scratch);
    req.head = Head::BatchNorm;
    req.fit.batch_size = 1;
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("--head batchnorm needs --batch-size"), "{err}");
}

/// A TEST split of noise with shuffled labels, in the same format.
fn garbage_test(dir: &Path) {
    write_split(&dir.join("Waves_TEST.ts"), 40, 99);
    let text = std::fs::read_to_string(dir.join("Waves_TEST.ts")).unwrap();
    let scrambled: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.rsplit_once(':') {
            Some((values, _)) if !line.starts_with('@') => {
                let noise: Vec<String> = values
                    .split(',')
                    .enumerate()
                    .map(|(t, _)| format!("{:.3}", ((i * 31 + t * 17) % 23) as f64 - 11.0))
                    .collect();
                format!(
                    "{}:{}\n",
                    noise.join(","),
                    if i % 3 == 0 { "slow" } else { "fast" }
                )
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(dir.join("Waves_TEST.ts"), scrambled).unwrap();
}

#[test]
fn the_linear_probe_chooses_on_train_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let encoder = small_fcn(tmp.path());
    for model in [ModelSpec::Saved(encoder), ModelSpec::MiniRocket] {
        let req = request(data.clone(), model.clone(), Protocol::Linear);
        let real = run_transfer(&req, &|_| {}).unwrap();
        let Selection::Ridge { alpha, loo_mse, .. } = real.seeds[0].selection else {
            panic!("the linear probe is a ridge classifier")
        };
        assert!(loo_mse.is_finite());
        if model == ModelSpec::MiniRocket {
            assert!(
                real.accuracy_mean >= 0.9,
                "MiniRocket accuracy {}",
                real.accuracy_mean
            );
        }
        // Garbage TEST cases change the score, never the choice.
        let garbled = tmp.path().join("garbled").join("Waves");
        std::fs::create_dir_all(&garbled).unwrap();
        std::fs::copy(data.join("Waves_TRAIN.ts"), garbled.join("Waves_TRAIN.ts")).unwrap();
        garbage_test(&garbled);
        let other = run_transfer(&request(garbled, model, Protocol::Linear), &|_| {}).unwrap();
        assert_eq!(other.seeds[0].selection, real.seeds[0].selection);
        assert_eq!(
            other.seeds[0].selection,
            Selection::Ridge {
                alpha,
                loo_mse,
                features: match &real.seeds[0].selection {
                    Selection::Ridge { features, .. } => *features,
                    _ => unreachable!(),
                },
                layer: None,
                levels_weight: None,
            }
        );
    }
}

#[test]
fn minirocket_and_layers_fit_their_protocols() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let err = run_transfer(
        &request(data.clone(), ModelSpec::MiniRocket, Protocol::Scratch),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--protocol linear"), "{err}");
    let mut req = request(
        data,
        ModelSpec::Saved(small_fcn(tmp.path())),
        Protocol::Linear,
    );
    req.layer = Some(2);
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(
        err.contains("--layer 2: this encoder has no layers"),
        "{err}"
    );
}

/// A saved patch transformer (random weights) over windows of 64 in patches of 8.
fn small_patch_transformer(root: &Path) -> PathBuf {
    let dir = root.join("small-patch-transformer");
    let cfg = EncoderConfig::PatchTransformer(SeriesConfig {
        length: 64,
        patch: 8,
        transformer: TransformerConfig {
            d_model: 16,
            heads: 2,
            d_ff: 32,
            layers: 2,
        },
    });
    let varmap = candle_nn::VarMap::new();
    cfg.build(&varmap, &candle_core::Device::Cpu).unwrap();
    save_encoder(&dir, &cfg, &varmap).unwrap();
    dir
}

#[test]
fn native_readouts_keep_the_series_length() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let model = ModelSpec::Saved(small_patch_transformer(tmp.path()));
    let mut req = request(data.clone(), model.clone(), Protocol::Linear);
    req.seeds = 1;
    let resampled = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(resampled.length, 64, "the encoder's window");
    req.native = true;
    let native = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(native.length, 32, "the series' own length");
    assert!(native.native && !resampled.native);
    // Four of eight patches: a different readout, still a working one (2 vs 6 cycles).
    assert!(native.accuracy_mean > 0.9, "{}", native.accuracy_mean);
    let mut finetune = request(data.clone(), model, Protocol::Finetune);
    finetune.native = true;
    let err = run_transfer(&finetune, &|_| {}).unwrap_err().to_string();
    assert!(
        err.contains("--native") && err.contains("--protocol linear"),
        "{err}"
    );
    let mut rocket = request(data, ModelSpec::MiniRocket, Protocol::Linear);
    rocket.native = true;
    let err = run_transfer(&rocket, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("MiniRocket has no layers"), "{err}");
}

#[test]
fn layer_auto_keeps_the_layer_with_the_lowest_train_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let model = ModelSpec::Saved(small_patch_transformer(tmp.path()));
    let mut req = request(data.clone(), model, Protocol::Linear);
    req.seeds = 1;
    let loo = |r: &s2kit::transfer::TransferReport| match r.seeds[0].selection {
        Selection::Ridge { loo_mse, layer, .. } => (loo_mse, layer),
        _ => panic!("the linear protocol selects a ridge probe"),
    };
    let fixed: Vec<f64> = [1, 2]
        .iter()
        .map(|&l| {
            req.layer = Some(l);
            let (mse, layer) = loo(&run_transfer(&req, &|_| {}).unwrap());
            assert_eq!(layer, Some(l), "the report names the layer read");
            mse
        })
        .collect();
    req.layer = None;
    req.choose_layer = true;
    let auto = run_transfer(&req, &|_| {}).unwrap();
    let (mse, layer) = loo(&auto);
    let best = if fixed[1] < fixed[0] { 2 } else { 1 };
    assert_eq!(layer, Some(best));
    assert_eq!(mse, fixed[best - 1]);
    assert!(auto.seeds[0]
        .selection
        .to_string()
        .contains(&format!("of layer {best}")));
    // No layers to choose from.
    let mut rocket = request(data, ModelSpec::MiniRocket, Protocol::Linear);
    rocket.choose_layer = true;
    let err = run_transfer(&rocket, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("--layer auto"), "{err}");
    assert!(
        s2kit::transfer::check_request(&rocket).is_err(),
        "refused before any work"
    );
}

#[test]
fn embeddings_are_written_in_the_documented_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let req = EmbedRequest {
        dataset: data,
        model: ModelSpec::Saved(small_fcn(tmp.path())),
        layer: None,
        native: false,
        seed: 0,
        device: candle_core::Device::Cpu,
    };
    let embedding = embed(&req).unwrap();
    let path = tmp.path().join("features.h5");
    embedding.write(&path, false).unwrap();
    let err = embedding.write(&path, false).unwrap_err().to_string();
    assert!(err.contains("--force"), "{err}");
    let file = hdf5::File::open(&path).unwrap();
    let features = file.dataset("train_features").unwrap();
    assert_eq!(features.shape(), vec![40, 32]);
    let labels: Vec<i64> = file.dataset("test_labels").unwrap().read_raw().unwrap();
    assert_eq!(labels.len(), 40);
    assert!(labels.iter().all(|&l| l == 0 || l == 1));
    let stored: Vec<f32> = features.read_raw().unwrap();
    let expected: Vec<f32> = embedding.train.features.iter().flatten().copied().collect();
    assert_eq!(stored, expected);
    let levels = file.dataset("test_levels").unwrap();
    assert_eq!(levels.shape(), vec![40, 2]); // one channel: its mean and log spread
    let stored: Vec<f32> = levels.read_raw().unwrap();
    assert!(stored.iter().all(|v| v.is_finite()));
}

#[test]
fn levels_bring_back_what_z_normalisation_hides() {
    // The classes differ only in their level, which every encoder's input has lost.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Waves");
    std::fs::create_dir_all(&dir).unwrap();
    let level = |slow: bool| (2.0, if slow { 0.0 } else { 3.0 });
    write_waves(&dir.join("Waves_TRAIN.ts"), 40, 1, level);
    write_waves(&dir.join("Waves_TEST.ts"), 40, 2, level);
    let encoder = ModelSpec::Saved(small_fcn(tmp.path()));
    let mut req = request(dir.clone(), encoder, Protocol::Linear);
    req.seeds = 1;
    let blind = run_transfer(&req, &|_| {}).unwrap();
    req.levels = true;
    let seeing = run_transfer(&req, &|_| {}).unwrap();
    assert!(
        blind.accuracy_mean < 0.8,
        "without levels {}",
        blind.accuracy_mean
    );
    assert_eq!(seeing.accuracy_mean, 1.0);
    let Selection::Ridge { levels_weight, .. } = seeing.seeds[0].selection else {
        panic!("the linear probe is a ridge classifier")
    };
    assert!(levels_weight.is_some_and(|w| w > 0.0), "{levels_weight:?}");

    // Garbage TEST cases change the score, never the choice of weight and α.
    let garbled = tmp.path().join("garbled").join("Waves");
    std::fs::create_dir_all(&garbled).unwrap();
    std::fs::copy(dir.join("Waves_TRAIN.ts"), garbled.join("Waves_TRAIN.ts")).unwrap();
    garbage_test(&garbled);
    req.dataset = garbled;
    let other = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(other.seeds[0].selection, seeing.seeds[0].selection);

    req.model = ModelSpec::MiniRocket;
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("MiniRocket already sees the levels"), "{err}");
}

#[test]
fn finetuning_starts_from_the_linear_probe() {
    // With a learning rate too small to move anything, what fine-tuning returns is its start:
    // the head fitted by ridge on the encoder's features scores like a classifier, where the
    // same model with a random head (scratch) scores near chance.
    // The batch-norm head starts as TRAIN's standardisation, with the probe fitted after it.
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let encoder = ModelSpec::Saved(small_fcn(tmp.path()));
    for head in [Head::Linear, Head::BatchNorm] {
        let mut req = request(data.clone(), encoder.clone(), Protocol::Finetune);
        req.seeds = 1;
        req.fit.max_epochs = 1;
        req.fit.lr = 1e-12;
        req.head = head;
        let warm = run_transfer(&req, &|_| {}).unwrap();
        assert!(
            warm.accuracy_mean >= 0.9,
            "{head:?}: warm start {}",
            warm.accuracy_mean
        );
        req.protocol = Protocol::Scratch;
        let cold = run_transfer(&req, &|_| {}).unwrap();
        assert!(
            cold.accuracy_mean <= 0.75,
            "{head:?}: random head {}",
            cold.accuracy_mean
        );
    }
}

#[test]
fn kfold_selection_chooses_on_train_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let encoder = ModelSpec::Saved(small_fcn(tmp.path()));
    let mut req = request(data.clone(), encoder.clone(), Protocol::Scratch);
    req.seeds = 1;
    req.fit.max_epochs = 12;
    req.folds = Some(4);
    let real = run_transfer(&req, &|_| {}).unwrap();
    let Selection::Epochs(fit) = &real.seeds[0].selection else {
        panic!("scratch trains by epochs")
    };
    assert_eq!(fit.folds, Some(4));
    assert!((1..=12).contains(&fit.best_epoch), "{fit:?}");
    assert!(fit.best_val_accuracy > 0.5, "{fit:?}");
    assert!(
        real.accuracy_mean >= 0.9,
        "k-fold scratch accuracy {}",
        real.accuracy_mean
    );
    // Garbage TEST cases change the score, never the epoch count or the folds' scores.
    let garbled = tmp.path().join("garbled").join("Waves");
    std::fs::create_dir_all(&garbled).unwrap();
    std::fs::copy(data.join("Waves_TRAIN.ts"), garbled.join("Waves_TRAIN.ts")).unwrap();
    garbage_test(&garbled);
    req.dataset = garbled;
    let other = run_transfer(&req, &|_| {}).unwrap();
    assert_eq!(other.seeds[0].selection, real.seeds[0].selection);
    assert_ne!(other.accuracy_mean, real.accuracy_mean);
    // One fold is no cross-validation, and the linear probe has its own selection.
    req.folds = Some(1);
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("--folds 1 must lie in [2, 20]"), "{err}");
    // Without early stopping, an endless schedule is refused rather than run.
    req.folds = Some(5);
    req.fit.max_epochs = usize::MAX;
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("use at most 10000 epochs"), "{err}");
    let mut req = request(data, encoder, Protocol::Linear);
    req.folds = Some(5);
    let err = run_transfer(&req, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("the linear protocol selects"), "{err}");
}
