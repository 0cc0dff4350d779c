//! The shape of the house, checked: library modules import only modules beneath them (the
//! order below, which `src/lib.rs` documents), and only the command line prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every library module, from the ground up; each may import only modules before it.
const FLOORS: &[&str] = &[
    "error",
    "rng",
    "checks",
    "digest",
    "lock",
    "runtime",
    "ops",
    "plot",
    "symbolic",
    "excitation",
    "ode",
    "preset",
    "store",
    "generate",
    "model",
    "train",
    "pretrain",
    "transfer",
    "inspect",
    "pipeline",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library files, each with its top-level module (`src/store/shard.rs` → `store`).
fn library_files() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel.components().next()?.as_os_str().to_str()?.to_string();
            let module = first.trim_end_matches(".rs").to_string();
            if ["lib", "main", "cli"].contains(&module.as_str()) {
                return None;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            Some((module, rel, text))
        })
        .collect()
}

/// The top-level modules a file names through `crate::`, including `crate::{a, b::c}`.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of every item at depth 0 of the braces.
            let (mut depth, mut item_start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&group[item_start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&group[item_start..i]));
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

#[test]
fn modules_import_only_modules_beneath_them() {
    let floor = |m: &str| FLOORS.iter().position(|f| *f == m);
    let mut violations = Vec::new();
    for (module, rel, text) in library_files() {
        let own = floor(&module).unwrap_or_else(|| {
            panic!(
                "src/{} belongs to '{module}', which FLOORS lacks",
                rel.display()
            )
        });
        for imported in imported_modules(&text) {
            // Re-exports at the crate root (`crate::Result`, `crate::Error`) are `error`'s.
            let imported = match imported.as_str() {
                "Error" | "Result" => "error".to_string(),
                _ => imported,
            };
            match floor(&imported) {
                Some(f) if f <= own => {}
                _ => violations.push(format!("src/{} imports crate::{imported}", rel.display())),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports from above:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_the_command_line_prints() {
    let mut printing = Vec::new();
    for (_, rel, text) in library_files() {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("]
                .iter()
                .any(|p| code.contains(p))
            {
                printing.push(format!("src/{}:{}", rel.display(), n + 1));
            }
        }
    }
    assert!(
        printing.is_empty(),
        "the library prints at:\n{}",
        printing.join("\n")
    );
}

#[test]
fn the_import_reader_sees_grouped_and_nested_imports() {
    let found = imported_modules(
        "use crate::{error::{Error, Result}, store::Corpus};\nlet x = crate::rng::sample_rng(1, 2);",
    );
    let want: BTreeSet<String> = ["error", "store", "rng"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
}
