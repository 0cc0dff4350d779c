//! Reader for the UCR/UEA `.ts` format (as written by sktime and aeon): `#` comments, `@`
//! headers, `@data` rows of `:`-separated dimensions with a trailing class label; univariate or
//! multivariate, equal or unequal length; `?` and `NaN` for missing values. Every error names
//! the file and the line.

use crate::digest::{sha256_bytes, sha256_file};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One split of a classification set. `series[i][c]` is channel c of case i (lengths may
/// differ between cases); `labels[i]` indexes `class_names`, in `@classLabel` order. Values
/// are kept in f64 until they are normalised, so that a set's scale (1e-40 or 1e30) does not
/// cost precision.
#[derive(Clone, Debug, PartialEq)]
pub struct TsSplit {
    pub problem: String,
    pub class_names: Vec<String>,
    pub series: Vec<Vec<Vec<f64>>>,
    pub labels: Vec<usize>,
}

impl TsSplit {
    /// Channels of cases with fewer than two observed values (all missing, or a single
    /// point): they carry no shape, and preprocessing makes them constant.
    pub fn degenerate_channels(&self) -> usize {
        self.series
            .iter()
            .flatten()
            .filter(|c| c.iter().filter(|v| v.is_finite()).count() < 2)
            .count()
    }

    /// TRAIN cases per class, in `class_names` order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    pub fn n_channels(&self) -> usize {
        self.series.first().map(|s| s.len()).unwrap_or(0)
    }

    pub fn max_length(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.iter().map(|c| c.len()))
            .max()
            .unwrap_or(0)
    }
}

fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn parse_bool(path: &Path, line: usize, key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(parse_error(
            path,
            line,
            format!("@{key} must be true or false, not '{value}'"),
        )),
    }
}

fn read_ts(path: &Path) -> Result<TsSplit> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_ts(&text, path)
}

/// Parses `.ts` text; `path` is used in error messages.
fn parse_ts(text: &str, path: &Path) -> Result<TsSplit> {
    // Editors on Windows start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problem = String::new();
    let mut univariate = None;
    let mut class_names: Option<Vec<String>> = None;
    let mut dimensions: Option<usize> = None;
    let mut series_length: Option<usize> = None;
    let mut equal_length = false;
    let mut in_data = false;
    let mut series = Vec::new();
    let mut labels = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(header) = line.strip_prefix('@') else {
                return Err(parse_error(path, line_no, "data before the @data header"));
            };
            let mut parts = header.split_whitespace();
            let key = parts.next().unwrap_or("").to_ascii_lowercase();
            let rest: Vec<&str> = parts.collect();
            let value = rest.first().copied().unwrap_or("");
            match key.as_str() {
                "problemname" => problem = rest.join(" "),
                "timestamps" if parse_bool(path, line_no, "timeStamps", value)? => {
                    return Err(parse_error(
                        path,
                        line_no,
                        "@timeStamps true is not supported",
                    ));
                }
                "missing" => {
                    parse_bool(path, line_no, "missing", value)?;
                }
                "univariate" => {
                    univariate = Some((parse_bool(path, line_no, "univariate", value)?, line_no))
                }
                "equallength" => equal_length = parse_bool(path, line_no, "equalLength", value)?,
                "serieslength" => {
                    series_length = Some(value.parse().map_err(|_| {
                        parse_error(
                            path,
                            line_no,
                            format!("@seriesLength '{value}' is not a number"),
                        )
                    })?)
                }
                "dimensions" | "dimension" => {
                    dimensions = Some(value.parse().map_err(|_| {
                        parse_error(
                            path,
                            line_no,
                            format!("@dimensions '{value}' is not a number"),
                        )
                    })?)
                }
                "classlabel" => {
                    if !parse_bool(path, line_no, "classLabel", value)? {
                        return Err(parse_error(
                            path,
                            line_no,
                            "@classLabel false (regression) is not supported",
                        ));
                    }
                    if rest.len() < 2 {
                        return Err(parse_error(
                            path,
                            line_no,
                            "@classLabel true lists no classes",
                        ));
                    }
                    let names: Vec<String> = rest[1..].iter().map(|s| s.to_string()).collect();
                    if let Some(dup) = names
                        .iter()
                        .enumerate()
                        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
                    {
                        return Err(parse_error(
                            path,
                            line_no,
                            format!("@classLabel lists class '{dup}' twice"),
                        ));
                    }
                    class_names = Some(names);
                }
                "data" => {
                    if let (Some((true, at)), Some(d)) =
                        (univariate, dimensions.filter(|&d| d != 1))
                    {
                        return Err(parse_error(
                            path,
                            at,
                            format!("@univariate true, but @dimensions {d}"),
                        ));
                    }
                    if class_names.is_none() {
                        return Err(parse_error(
                            path,
                            line_no,
                            "@data comes before any @classLabel header",
                        ));
                    }
                    in_data = true;
                }
                _ => {} // other headers (e.g. @targetlabel false) carry nothing we need
            }
            continue;
        }
        let classes = class_names.as_ref().expect("checked at @data");
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 2 {
            return Err(parse_error(
                path,
                line_no,
                "a data row needs at least one dimension and a class label",
            ));
        }
        let label_text = fields[fields.len() - 1].trim();
        let label = classes
            .iter()
            .position(|c| c == label_text)
            .ok_or_else(|| {
                parse_error(
                    path,
                    line_no,
                    format!(
                        "class label '{label_text}' is not declared in @classLabel ({})",
                        classes.join(" ")
                    ),
                )
            })?;
        let dims = &fields[..fields.len() - 1];
        if univariate.is_some_and(|(u, _)| u) && dims.len() != 1 {
            return Err(parse_error(
                path,
                line_no,
                format!(
                    "row has {} dimensions but the file says @univariate true",
                    dims.len()
                ),
            ));
        }
        let expected = dimensions.or_else(|| series.first().map(|s: &Vec<Vec<f64>>| s.len()));
        if let Some(expected) = expected {
            if dims.len() != expected {
                return Err(parse_error(
                    path,
                    line_no,
                    format!("row has {} dimensions, expected {expected}", dims.len()),
                ));
            }
        }
        let mut channels = Vec::with_capacity(dims.len());
        for (d, field) in dims.iter().enumerate() {
            let values: Result<Vec<f64>> = field
                .split(',')
                .map(|v| {
                    let v = v.trim();
                    if v == "?" || v.eq_ignore_ascii_case("nan") {
                        return Ok(f64::NAN);
                    }
                    let bad = |why: &str| {
                        parse_error(path, line_no, format!("dimension {d}: '{v}' {why}"))
                    };
                    let x = v.parse::<f64>().map_err(|_| bad("is not a number"))?;
                    // Models compute in f32: a value it cannot hold would become infinity.
                    if !x.is_finite() || x.abs() > f32::MAX as f64 {
                        return Err(bad("is beyond the f32 range (±3.4e38)"));
                    }
                    Ok(x)
                })
                .collect();
            channels.push(values?);
        }
        if equal_length {
            let want = series_length.unwrap_or(channels[0].len());
            if let Some(c) = channels.iter().position(|c| c.len() != want) {
                return Err(parse_error(
                    path,
                    line_no,
                    format!(
                        "dimension {c} has {} values but @equalLength true with length {want}",
                        channels[c].len()
                    ),
                ));
            }
        }
        series.push(channels);
        labels.push(label);
    }
    if !in_data {
        return Err(parse_error(
            path,
            text.lines().count().max(1),
            "no @data section",
        ));
    }
    if series.is_empty() {
        return Err(parse_error(
            path,
            text.lines().count().max(1),
            "no data rows after @data",
        ));
    }
    Ok(TsSplit {
        problem,
        class_names: class_names.expect("checked at @data"),
        series,
        labels,
    })
}

/// A dataset directory holding `NAME_TRAIN.ts` and `NAME_TEST.ts`.
pub struct TsDataset {
    pub name: String,
    pub train: TsSplit,
    pub test: TsSplit,
}

fn split_paths(dir: &Path) -> Result<(String, PathBuf, PathBuf)> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Request(format!("{}: not a dataset directory", dir.display())))?
        .to_string();
    let train = dir.join(format!("{name}_TRAIN.ts"));
    let test = dir.join(format!("{name}_TEST.ts"));
    for p in [&train, &test] {
        if !p.exists() {
            return Err(Error::Request(format!(
                "{}: missing {} (a dataset directory holds NAME_TRAIN.ts and NAME_TEST.ts)",
                dir.display(),
                p.display()
            )));
        }
    }
    Ok((name, train, test))
}

/// A digest of a dataset directory's TRAIN and TEST files.
pub fn dataset_digest(dir: &Path) -> Result<String> {
    let (_, train, test) = split_paths(dir)?;
    let parts = [sha256_file(&train)?, sha256_file(&test)?];
    Ok(sha256_bytes(parts.join(" ").as_bytes()))
}

impl TsDataset {
    pub fn load(dir: &Path) -> Result<TsDataset> {
        let (name, train_path, test_path) = split_paths(dir)?;
        let train = read_ts(&train_path)?;
        let test = read_ts(&test_path)?;
        if train.class_names != test.class_names {
            return Err(Error::DatasetFiles {
                path: test_path,
                message: "its @classLabel list differs from the TRAIN file's".into(),
            });
        }
        if train.n_channels() != test.n_channels() {
            return Err(Error::DatasetFiles {
                path: test_path,
                message: format!(
                    "{} channels, but TRAIN has {}",
                    test.n_channels(),
                    train.n_channels()
                ),
            });
        }
        Ok(TsDataset { name, train, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TsSplit> {
        parse_ts(text, Path::new("x.ts"))
    }

    const HEADER: &str = "# comment\n@problemName Toy\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n";

    #[test]
    fn parses_multivariate_unequal_rows_with_missing_values() {
        let s = parse(&format!("{HEADER}1,2,3:4,?,6:down\n7,NaN:8,9:up\n")).unwrap();
        assert_eq!(s.class_names, vec!["up", "down"]);
        assert_eq!(s.labels, vec![1, 0]);
        assert_eq!(s.series[0][0], vec![1.0, 2.0, 3.0]);
        assert!(s.series[0][1][1].is_nan() && s.series[1][0][1].is_nan());
        assert_eq!(s.series[1][1], vec![8.0, 9.0]);
        assert_eq!(s.max_length(), 3);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            (
                format!("{HEADER}1,2:3,4:up\n1,2:up\n"),
                ":11:",
                "dimensions",
            ),
            (format!("{HEADER}1,2:3,4:sideways\n"), ":10:", "sideways"),
            (
                format!("{HEADER}1,x:3,4:up\n"),
                ":10:",
                "'x' is not a number",
            ),
            (
                "@problemName Toy\n@classLabel true a b\n1,2:a\n".to_string(),
                ":3:",
                "before the @data",
            ),
            (
                "@problemName Toy\n@classLabel true a b\n".to_string(),
                ":2:",
                "no @data",
            ),
            ("@data\n1:a\n".to_string(), ":1:", "@classLabel"),
            (
                "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n"
                    .to_string(),
                ":5:",
                "length 3",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(line) && err.contains(needle), "{err}");
            assert!(err.starts_with("x.ts"), "{err}");
        }
    }

    #[test]
    fn every_bundled_file_reads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ucr");
        let expected = [
            ("GunPoint", 50, 150, 1, 2, 150),
            ("ItalyPowerDemand", 67, 1029, 1, 2, 24),
            ("BasicMotions", 40, 40, 6, 4, 100),
            ("JapaneseVowels", 270, 370, 12, 9, 29),
        ];
        for (name, n_train, n_test, channels, classes, max_len) in expected {
            let d = TsDataset::load(&root.join(name)).unwrap();
            assert_eq!(
                (d.train.series.len(), d.test.series.len()),
                (n_train, n_test),
                "{name}"
            );
            assert_eq!(d.train.n_channels(), channels, "{name}");
            assert_eq!(d.train.class_names.len(), classes, "{name}");
            assert_eq!(
                d.train.max_length().max(d.test.max_length()),
                max_len,
                "{name}"
            );
            for c in 0..classes {
                assert!(
                    d.train.labels.contains(&c),
                    "{name}: class {c} missing from TRAIN"
                );
            }
        }
    }
}
