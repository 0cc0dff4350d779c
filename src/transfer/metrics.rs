//! Classification metrics: accuracy, macro-F1 and per-class counts.

use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassCounts {
    pub class: String,
    /// True cases of this class.
    pub support: usize,
    /// Cases predicted as this class.
    pub predicted: usize,
    pub correct: usize,
    pub f1: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassCounts>,
}

/// Scores `predicted` against `truth`. Macro-F1 averages F1 over every class that occurs in
/// `truth` or `predicted` (sklearn's convention); a class with no correct prediction has F1 0.
pub fn score(truth: &[usize], predicted: &[usize], class_names: &[String]) -> Scores {
    let k = class_names.len();
    let mut support = vec![0usize; k];
    let mut pred = vec![0usize; k];
    let mut correct = vec![0usize; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        support[t] += 1;
        pred[p] += 1;
        if t == p {
            correct[t] += 1;
        }
    }
    let per_class: Vec<ClassCounts> = (0..k)
        .map(|c| {
            let f1 = if support[c] + pred[c] == 0 {
                0.0
            } else {
                2.0 * correct[c] as f64 / (support[c] + pred[c]) as f64
            };
            ClassCounts {
                class: class_names[c].clone(),
                support: support[c],
                predicted: pred[c],
                correct: correct[c],
                f1,
            }
        })
        .collect();
    let present: Vec<&ClassCounts> = per_class
        .iter()
        .filter(|c| c.support + c.predicted > 0)
        .collect();
    let macro_f1 = present.iter().map(|c| c.f1).sum::<f64>() / present.len().max(1) as f64;
    let accuracy = correct.iter().sum::<usize>() as f64 / truth.len().max(1) as f64;
    Scores {
        accuracy,
        macro_f1,
        per_class,
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // truth a a a b b c, predicted a a b b c c
        let s = score(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], &names);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // F1: a = 2·2/(3+2) = 0.8, b = 2·1/(2+2) = 0.5, c = 2·1/(1+2) = 2/3.
        let want = (0.8 + 0.5 + 2.0 / 3.0) / 3.0;
        assert!((s.macro_f1 - want).abs() < 1e-12, "{}", s.macro_f1);
        assert_eq!(
            s.per_class[0],
            ClassCounts {
                class: "a".into(),
                support: 3,
                predicted: 2,
                correct: 2,
                f1: 0.8
            }
        );
    }

    #[test]
    fn absent_classes_do_not_count_and_misses_score_zero() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let s = score(&[0, 0, 1], &[0, 0, 0], &names);
        // a: 2·2/(2+3) = 0.8, b: 0, c absent.
        assert!((s.macro_f1 - 0.4).abs() < 1e-12);
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!((m, s), (2.0, 1.0));
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }
}
