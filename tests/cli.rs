//! The `s2kit` binary as a user runs it: bad input gives a one-line error and a non-zero exit,
//! never a panic; a killed run resumes to the same corpus.

mod common;

use common::{fails_with, s2kit};
use std::path::Path;
use std::process::Command;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bad_input_is_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = write(d, "good.toml", "length = 32\n");
    let out = |name: &str| d.join(name).to_str().unwrap().to_string();
    let run = |cfg: &str, extra: &[&str], dir: &str| {
        let mut args = vec!["generate", "--config", cfg, "--samples", "4", "--out", dir];
        args.extend_from_slice(extra);
        s2kit(&args)
    };
    fails_with(
        run(
            &write(d, "unknown.toml", "[excitation.arma]\nqmax = 3\n"),
            &[],
            &out("a"),
        ),
        "qmax",
    );
    fails_with(
        run(
            &write(d, "typed.toml", "length = \"long\"\n"),
            &[],
            &out("b"),
        ),
        "length",
    );
    fails_with(
        run(
            &write(d, "kmax.toml", "[excitation.mixture]\nk_max = 0\n"),
            &[],
            &out("c"),
        ),
        "k_max",
    );
    fails_with(
        run(&write(d, "len.toml", "length = 0\n"), &[], &out("d")),
        "length",
    );
    fails_with(run(&good, &["--length", "0"], &out("e")), "length");
    fails_with(
        run(&good, &["--worker", "3", "--workers", "3"], &out("f")),
        "--worker 3",
    );
    fails_with(run(&out("missing.toml"), &[], &out("g")), "missing.toml");

    // A non-empty --out without --resume.
    let busy = d.join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    fails_with(run(&good, &[], busy.to_str().unwrap()), "--resume");

    // An unwritable --out: a path below a regular file.
    let blocker = write(d, "file", "");
    fails_with(run(&good, &[], &format!("{blocker}/corpus")), "corpus");

    fails_with(s2kit(&["inspect", d.to_str().unwrap()]), "manifest.json");

    // A device this build cannot use, named before any work starts.
    let pretrain = |device: &str| {
        s2kit(&[
            "pretrain",
            "--recipe",
            "recipes/pretrain-tiny.toml",
            "--data",
            &out("none"),
            "--out",
            &out("run"),
            "--device",
            device,
        ])
    };
    fails_with(pretrain("tpu"), "cpu, cuda or cuda:N");
    if !cfg!(feature = "cuda") {
        fails_with(pretrain("cuda:0"), "--features cuda");
    }
}

#[test]
fn generate_inspect_and_plot_work_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let cfg = write(tmp.path(), "p.toml", "length = 64\n[kinds]\node = 0.5\n");
    let out = s2kit(&[
        "generate",
        "--config",
        &cfg,
        "--samples",
        "40",
        "--out",
        corpus.to_str().unwrap(),
        "--shard-size",
        "16",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = s2kit(&["inspect", corpus.to_str().unwrap(), "--json", "--verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ids"], 40);
    assert_eq!(summary["shards"], 3);
    let accepted = summary["samples"].as_u64().unwrap();
    assert_eq!(accepted + summary["failed"].as_u64().unwrap(), 40);
    assert!(summary["kinds"]["ode"].as_u64().unwrap() > 0);
    // Every rejected candidate is counted under one reason.
    let reasons = summary["rejections"].as_object().unwrap();
    let by_reason: u64 = reasons.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_reason, summary["rejected_candidates"].as_u64().unwrap());
    assert!(by_reason > 0 && reasons.len() == 8, "{reasons:?}");

    let png = tmp.path().join("samples.png");
    let out = s2kit(&[
        "plot",
        corpus.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
        "--count",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[test]
fn a_killed_run_resumes_to_the_uninterrupted_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(
        tmp.path(),
        "p.toml",
        "length = 128\n[dims]\noutputs = [1, 4]\n",
    );
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    let args = |dir: &Path| {
        vec![
            "generate".to_string(),
            "--config".into(),
            cfg.clone(),
            "--samples".into(),
            "6000".into(),
            "--shard-size".into(),
            "500".into(),
            "--threads".into(),
            "1".into(),
            "--out".into(),
            dir.to_str().unwrap().into(),
        ]
    };
    assert!(
        s2kit(&args(&full).iter().map(String::as_str).collect::<Vec<_>>())
            .status
            .success()
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_s2kit"))
        .args(args(&killed))
        .spawn()
        .unwrap();
    // Kill once at least one shard is listed (or the run ended on its own).
    let manifest = killed.join("manifest.json");
    for _ in 0..600 {
        let listed = std::fs::read_to_string(&manifest)
            .map(|t| t.contains("shard-000000.h5"))
            .unwrap_or(false);
        if listed || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();

    let mut resume = args(&killed);
    resume.push("--resume".into());
    let out = s2kit(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |d: &Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap())
                .unwrap();
        m["shards"].clone()
    };
    assert_eq!(
        read(&killed),
        read(&full),
        "same shards, counts and checksums"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&killed)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn the_pipeline_runs_from_one_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = env!("CARGO_MANIFEST_DIR");
    let pretrain = write(
        d,
        "tiny.toml",
        "[model]\nproj_dim = 8\n[model.series]\nlength = 32\npatch = 8\n[model.series.transformer]\nd_model = 16\nheads = 2\nd_ff = 32\nlayers = 1\n\
[model.symbol]\nmax_tokens = 32\n[model.symbol.transformer]\nd_model = 16\nheads = 2\nd_ff = 32\nlayers = 1\n[objectives]\nqueue_size = 32\n\
[train]\nbatch_size = 8\nsteps = 4\nlr = 1e-3\nmin_lr = 1e-5\nweight_decay = 0.0\nwarmup_steps = 1\nclip_norm = 1.0\nseed = 0\ncheckpoint_every = 2\nshuffle_buffer = 16\nprefetch_batches = 2\n",
    );
    let preset = write(d, "preset.toml", "length = 32\n");
    let out = d.join("run");
    let recipe = write(
        d,
        "pipeline.toml",
        &format!(
            "out = \"{}\"\n[generate]\npreset = \"{preset}\"\nsamples = 60\nseed = 1\nshard_size = 30\n[pretrain]\nrecipe = \"{pretrain}\"\n\
[transfer]\ndatasets = [\"{root}/data/ucr/ItalyPowerDemand\"]\nseeds = 1\nepochs = 2\nfcn_epochs = 1\n\
encoders = [\"{root}/models/tiny-mixed-1m\"]\n",
            out.display(),
        ),
    );
    // A copy of the recipe with one edit, which must fail before any stage starts.
    let edited = |name: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(&recipe).unwrap();
        write(d, name, &text.replace(from, to))
    };
    // A missing dataset is found before any stage starts, not after generation.
    let missing = edited("missing.toml", "ItalyPowerDemand", "NoSuchSet");
    fails_with(s2kit(&["run", &missing]), "NoSuchSet");
    // So is a transfer setting that the last stage would refuse.
    let no_epochs = edited("no-epochs.toml", "fcn_epochs = 1", "fcn_epochs = 0");
    fails_with(s2kit(&["run", &no_epochs]), "column FCN");
    // Recipe keys are named as the recipe spells them, not as transfer's flags.
    let one_fold = edited("one-fold.toml", "seeds = 1\n", "seeds = 1\nfolds = 1\n");
    fails_with(s2kit(&["run", &one_fold]), "transfer.folds = 1");
    let long_folds = edited("long-folds.toml", "epochs = 2", "epochs = 20000");
    fails_with(s2kit(&["run", &long_folds]), "transfer.epochs = 20000");
    assert!(!out.join("corpus").exists(), "a stage ran before the check");

    let result = s2kit(&["run", &recipe]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains("| ItalyPowerDemand |")
            && stdout.contains("finetune")
            && stdout.contains("FCN")
            && stdout.contains("MiniRocket | tiny-mixed-1m |"),
        "{stdout}"
    );
    // Rerun unchanged: every stage is reused, the table is the same.
    let again = s2kit(&["run", &recipe]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);

    // Each changed stage is refused, never reused; --rerun-stale redoes it and says so.
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    for (from, to, stage) in [
        ("seed = 1\n", "seed = 2\n", "corpus is stale"),
        (
            "epochs = 2",
            "epochs = 3",
            "ItalyPowerDemand-scratch.json is stale",
        ),
    ] {
        text = text.replacen(from, to, 1);
        std::fs::write(&recipe, &text).unwrap();
        fails_with(s2kit(&["run", &recipe]), stage);
        let redone = s2kit(&["run", &recipe, "--rerun-stale"]);
        let stderr = String::from_utf8_lossy(&redone.stderr);
        assert!(
            redone.status.success() && stderr.contains("replacing"),
            "{stderr}"
        );
    }
    let pretrain_text = std::fs::read_to_string(&pretrain).unwrap();
    std::fs::write(&pretrain, pretrain_text.replace("lr = 1e-3", "lr = 2e-3")).unwrap();
    fails_with(s2kit(&["run", &recipe]), "pretrain is stale");
    for f in [
        "summary.md",
        "summary.json",
        "corpus/manifest.json",
        "pretrain/encoder.json",
        "transfer/ItalyPowerDemand-linear.json",
        "transfer/ItalyPowerDemand-MiniRocket.json",
        "transfer/ItalyPowerDemand-tiny-mixed-1m.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    use std::process::Stdio;
    // Standard output is a pipe whose reader is already gone, as under `| head` once head
    // has read enough: every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let out = Command::new(env!("CARGO_BIN_EXE_s2kit"))
        .args([
            "generate",
            "--config",
            "generators/s2.toml",
            "--samples",
            "4",
            "--out",
        ])
        .arg(&corpus)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success(), "the summary was not written");
    assert!(
        corpus.join("manifest.json").exists(),
        "the work was done first"
    );
}
