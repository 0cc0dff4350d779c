//! The promises of docs/reliability.md, tried the way a careless or hostile user would: two
//! writers on one output, edited manifests, damaged files, values that parse but cannot
//! work, and degenerate classification data. Each failure must be one clear line and a
//! non-zero exit; each accepted oddity must be said in the report.

mod common;

use common::{fails_with, flip_byte, s2kit};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn succeeds(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn preset(dir: &Path, text: &str) -> String {
    let p = dir.join(format!("preset-{}.toml", text.len()));
    std::fs::write(&p, text).unwrap();
    path_str(&p).to_string()
}

/// A finished corpus of `samples` explicit samples in shards of 50.
fn corpus(dir: &Path, samples: u64, extra: &[&str]) -> PathBuf {
    let out = dir.join("corpus");
    let cfg = preset(dir, "length = 32\n");
    let n = samples.to_string();
    let mut args = vec![
        "generate",
        "--config",
        &cfg,
        "--samples",
        &n,
        "--shard-size",
        "50",
        "--out",
        path_str(&out),
    ];
    args.extend_from_slice(extra);
    succeeds(s2kit(&args));
    out
}

#[test]
fn a_second_writer_on_one_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = preset(tmp.path(), "length = 128\n[dims]\noutputs = [1, 4]\n");
    let out = tmp.path().join("corpus");
    let args = [
        "generate",
        "--config",
        &cfg,
        "--samples",
        "20000",
        "--shard-size",
        "500",
        "--threads",
        "1",
        "--out",
        path_str(&out),
    ];
    let mut first = Command::new(env!("CARGO_BIN_EXE_s2kit"))
        .args(args)
        .spawn()
        .unwrap();
    let manifest = out.join("manifest.json");
    for _ in 0..500 {
        if manifest.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut resume = args.to_vec();
    resume.push("--resume");
    let second = s2kit(&resume);
    let still_running = first.try_wait().unwrap().is_none();
    let _ = first.kill();
    let _ = first.wait();
    assert!(
        still_running,
        "the first writer ended before the second started"
    );
    fails_with(second, &format!("in use by pid {}", first.id()));
    // Once the first is gone (killed), the lock is gone with it: resuming works.
    succeeds(s2kit(&resume));
}

#[test]
fn every_writer_takes_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 100, &[]);
    let held = tmp.path().join("held");
    std::fs::create_dir(&held).unwrap();
    let _lock = s2kit::lock::lock_dir(&held, None).unwrap();
    let in_use = format!("in use by pid {}", std::process::id());
    let recipe = "recipes/pretrain-tiny.toml";
    fails_with(
        s2kit(&[
            "pretrain",
            "--recipe",
            recipe,
            "--data",
            path_str(&data),
            "--out",
            path_str(&held),
        ]),
        &in_use,
    );
    fails_with(s2kit(&["merge", path_str(&held)]), &in_use);
    fails_with(
        s2kit(&[
            "transfer",
            "--dataset",
            "data/ucr/ItalyPowerDemand",
            "--model",
            "fcn",
            "--protocol",
            "scratch",
            "--epochs",
            "1",
            "--save-encoder",
            path_str(&held),
        ]),
        &in_use,
    );
    let generate_out = s2kit(&[
        "generate",
        "--config",
        &preset(tmp.path(), "length = 32\n"),
        "--samples",
        "10",
        "--out",
        path_str(&held),
    ]);
    fails_with(generate_out, &in_use);
}

type ManifestEdit = dyn Fn(&mut serde_json::Value);

#[test]
fn edited_manifests_and_damaged_shards_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus(tmp.path(), 200, &[]);
    let path = dir.join("manifest.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&original).unwrap();
    let edits: Vec<(&str, Box<ManifestEdit>)> = vec![
        (
            "listed twice",
            Box::new(|m| {
                let first = m["shards"][0].clone();
                m["shards"].as_array_mut().unwrap().insert(1, first);
            }),
        ),
        (
            "do not match",
            Box::new(|m| m["shards"][1]["samples"] = 49.into()),
        ),
        (
            "format_version 999",
            Box::new(|m| m["format_version"] = 999.into()),
        ),
        (
            "names file '../x.h5'",
            Box::new(|m| m["shards"][2]["file"] = "../x.h5".into()),
        ),
    ];
    for (needle, edit) in edits {
        let mut m = json.clone();
        edit(&mut m);
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        fails_with(s2kit(&["inspect", path_str(&dir), "--verify"]), needle);
    }
    std::fs::write(&path, &original).unwrap();
    succeeds(s2kit(&["inspect", path_str(&dir), "--verify"]));

    // One flipped byte: same size, so only the checksum tells; reading refuses it too.
    flip_byte(&dir.join("shard-000002.h5"));
    fails_with(
        s2kit(&["inspect", path_str(&dir), "--verify"]),
        "shard-000002.h5",
    );
    fails_with(
        s2kit(&["inspect", path_str(&dir)]),
        "checksum does not match",
    );
}

#[test]
fn merge_refuses_parts_whose_shards_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    for w in ["0", "1"] {
        corpus(tmp.path(), 200, &["--workers", "2", "--worker", w]);
    }
    let dir = tmp.path().join("corpus");
    std::fs::remove_file(dir.join("shard-000001.h5")).unwrap();
    fails_with(s2kit(&["merge", path_str(&dir)]), "shard-000001.h5");
    assert!(
        !dir.join("manifest.json").exists(),
        "no manifest was written"
    );
}

#[test]
fn values_that_parse_but_cannot_work_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = preset(d, "length = 32\n");
    let generate = |cfg: &str, extra: &[&str]| {
        let out = d.join(format!("g{}", extra.join("").len() + cfg.len()));
        let mut args = vec!["generate", "--config", cfg, "--out", path_str(&out)];
        args.extend_from_slice(extra);
        if !extra.contains(&"--samples") {
            args.extend(["--samples", "10"]);
        }
        s2kit(&args)
    };
    let max = u64::MAX.to_string();
    for (cfg, extra, needle) in [
        (
            good.clone(),
            vec!["--samples", &max, "--shard-size", &max],
            "GiB",
        ),
        (
            good.clone(),
            vec!["--samples", "1000000000000000"],
            "shards",
        ),
        (
            good.clone(),
            vec!["--length", &max],
            "length = 18446744073709551615",
        ),
        (good.clone(), vec!["--length", "1000000000"], "length"),
        (good.clone(), vec!["--threads", "100000"], "--threads"),
        (preset(d, "[kinds]\node = inf\n"), vec![], "kinds"),
        (
            preset(d, "[validation]\nmax_condition = nan\n"),
            vec![],
            "max_condition",
        ),
        (
            preset(d, "[validation]\nmax_condition = 0.0\n"),
            vec![],
            "max_condition",
        ),
        // Nothing can pass: the run must not end as if it had made a corpus.
        (
            preset(
                d,
                "length = 32\n[validation]\nmax_abs = 1e-300\nmax_attempts = 2\n",
            ),
            vec![],
            "every one of the 10 samples failed",
        ),
    ] {
        fails_with(generate(&cfg, &extra), needle);
    }

    let dir = corpus(d, 100, &[]);
    let png = |name: &str| path_str(&d.join(name)).to_string();
    let plot =
        |out: &str, count: &str| s2kit(&["plot", path_str(&dir), "--out", out, "--count", count]);
    fails_with(plot(&png("a.png"), "100000"), "--count");
    fails_with(plot(&png("a.png"), "0"), "--count");
    fails_with(plot(path_str(d), "2"), "is a directory");
    fails_with(plot(&png("noext"), "2"), ".png");

    // A pretraining recipe whose objectives all weigh 0 would train nothing.
    let tiny = std::fs::read_to_string("recipes/pretrain-tiny.toml").unwrap();
    let zero = d.join("zero.toml");
    std::fs::write(
        &zero,
        tiny.lines()
            .map(|l| match l.split_once(" = ") {
                Some((key, _)) if key.ends_with("_weight") => format!("{key} = 0.0"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    fails_with(
        s2kit(&[
            "pretrain",
            "--recipe",
            path_str(&zero),
            "--data",
            path_str(&dir),
            "--out",
            &png("run"),
        ]),
        "not all 0",
    );
}

/// A copy of the shipped encoder with `encoder.json` edited by `edit`.
fn edited_encoder(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let src = Path::new("models/tiny-mixed-1m");
    std::fs::copy(
        src.join("encoder.safetensors"),
        out.join("encoder.safetensors"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("encoder.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(out.join("encoder.json"), cfg.to_string()).unwrap();
    out
}

#[test]
fn encoder_configs_are_checked_against_limits_and_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let transfer = |model: &Path| {
        s2kit(&[
            "transfer",
            "--dataset",
            "data/ucr/ItalyPowerDemand",
            "--model",
            path_str(model),
            "--protocol",
            "linear",
        ])
    };
    let long = edited_encoder(tmp.path(), "long", |c| {
        c["length"] = 1_000_000_000u64.into()
    });
    fails_with(transfer(&long), "too long");
    let heads = edited_encoder(tmp.path(), "heads", |c| {
        c["transformer"]["heads"] = 3.into()
    });
    fails_with(transfer(&heads), "not divisible by heads 3");
    let fewer = edited_encoder(tmp.path(), "fewer", |c| {
        let layers = c["transformer"]["layers"].as_u64().unwrap();
        c["transformer"]["layers"] = (layers - 1).into();
    });
    fails_with(transfer(&fewer), "fit no variable");
    let more = edited_encoder(tmp.path(), "more", |c| {
        let layers = c["transformer"]["layers"].as_u64().unwrap();
        c["transformer"]["layers"] = (layers + 1).into();
    });
    fails_with(transfer(&more), "missing tensor");
}

/// A copy of dataset `name` with every line of both files passed through `edit(split, line)`;
/// `edit` returns `None` to drop the line.
fn edited_dataset(dir: &Path, name: &str, edit: impl Fn(&str, &str) -> Option<String>) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for split in ["TRAIN", "TEST"] {
        let file = format!("{name}_{split}.ts");
        let text = std::fs::read_to_string(Path::new("data/ucr").join(name).join(&file)).unwrap();
        let edited: Vec<String> = text.lines().filter_map(|l| edit(split, l)).collect();
        std::fs::write(out.join(&file), edited.join("\n") + "\n").unwrap();
    }
    out
}

/// True for a data row (not a header, comment or blank line).
fn is_row(line: &str) -> bool {
    !(line.is_empty() || line.starts_with('@') || line.starts_with('#'))
}

fn scale_row(line: &str, factor: f64) -> String {
    if !is_row(line) {
        return line.to_string();
    }
    let (values, label) = line.rsplit_once(':').unwrap();
    let scaled: Vec<String> = values
        .split(',')
        .map(|v| format!("{:e}", v.trim().parse::<f64>().unwrap() * factor))
        .collect();
    format!("{}:{label}", scaled.join(","))
}

fn accuracy(out: Output) -> f64 {
    let text = succeeds(out);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mean"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn degenerate_classification_data_is_refused_or_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("sets");
    let transfer = |dataset: &Path, model: &str, protocol: &str| {
        s2kit(&[
            "transfer",
            "--dataset",
            path_str(dataset),
            "--model",
            model,
            "--protocol",
            protocol,
            "--epochs",
            "2",
        ])
    };
    let name = "ItalyPowerDemand";
    let model = "models/tiny-mixed-1m";

    // Scale: the same set at 1e-40 gives the same accuracy as the original.
    let plain = accuracy(transfer(&Path::new("data/ucr").join(name), model, "linear"));
    let tiny = edited_dataset(&d.join("tiny"), name, |_, l| Some(scale_row(l, 1e-40)));
    assert_eq!(accuracy(transfer(&tiny, model, "linear")), plain);
    // Beyond f32: an error naming the file and line.
    let huge = edited_dataset(&d.join("huge"), name, |_, l| Some(scale_row(l, 1e39)));
    fails_with(transfer(&huge, model, "linear"), "_TRAIN.ts:14:");

    // A byte-order mark is not an error.
    let bom = edited_dataset(&d.join("bom"), name, |_, l| {
        Some(if l.starts_with("#The data") {
            format!("\u{feff}{l}")
        } else {
            l.to_string()
        })
    });
    assert_eq!(accuracy(transfer(&bom, model, "linear")), plain);

    // Labels and dimensions that contradict the header.
    let dup = edited_dataset(&d.join("dup"), name, |_, l| {
        Some(l.replace("@classLabel true 1 2", "@classLabel true 1 1 2"))
    });
    fails_with(transfer(&dup, model, "linear"), "class '1' twice");
    let two_dims = edited_dataset(&d.join("dims"), name, |_, l| {
        Some(match l.rsplit_once(':') {
            Some((v, label)) if is_row(l) => format!("{v}:{v}:{label}"),
            _ => l.to_string(),
        })
    });
    fails_with(transfer(&two_dims, model, "linear"), "@univariate true");

    // One class in TRAIN cannot be classified; a class of one case is said in the report.
    let one_class = edited_dataset(&d.join("one"), name, |split, l| {
        (!is_row(l) || split == "TEST" || l.ends_with(":1")).then(|| l.to_string())
    });
    fails_with(transfer(&one_class, model, "linear"), "at least two");
    let seen = std::cell::Cell::new(0);
    let single = edited_dataset(&d.join("single"), name, |split, l| {
        if split == "TRAIN" && is_row(l) && l.ends_with(":2") {
            // Only the first class-2 case of TRAIN is kept.
            seen.set(seen.get() + 1);
            return (seen.get() == 1).then(|| l.to_string());
        }
        Some(l.to_string())
    });
    let text = succeeds(transfer(&single, "fcn", "scratch"));
    assert!(
        text.contains("note: class(es) 2 have one TRAIN case"),
        "{text}"
    );

    // A missing channel is filled and counted, never silently.
    let missing = edited_dataset(&d.join("missing"), name, |split, l| {
        if split == "TEST" || !l.starts_with("-0.71051757") {
            return Some(l.to_string());
        }
        let label = l.rsplit_once(':').unwrap().1;
        Some(format!("{}:{label}", vec!["?"; 24].join(",")))
    });
    let text = succeeds(transfer(&missing, model, "linear"));
    assert!(
        text.contains("note: 1 TRAIN channel(s) have fewer than two observed values"),
        "{text}"
    );
}
