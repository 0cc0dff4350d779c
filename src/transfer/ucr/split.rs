//! Stratified hold-out: the validation split that model selection uses instead of TEST.

use rand::seq::SliceRandom;
use rand::Rng;

/// Splits case indices into (train, validation) with about `fraction` of every class in
/// validation. A class with at least two cases keeps at least one case on each side; a class
/// with one case stays in train.
pub fn stratified_split(
    labels: &[usize],
    fraction: f64,
    rng: &mut impl Rng,
) -> (Vec<usize>, Vec<usize>) {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..n_classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(rng);
        let n = members.len();
        let n_val = if n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        val.extend_from_slice(&members[..n_val]);
        train.extend_from_slice(&members[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn every_class_is_split_in_proportion() {
        let labels: Vec<usize> = (0..100)
            .map(|i| {
                if i < 80 {
                    0
                } else if i < 97 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let mut rng = sample_rng(1, 0);
        let (train, val) = stratified_split(&labels, 0.25, &mut rng);
        assert_eq!(train.len() + val.len(), 100);
        let count = |idx: &[usize], c: usize| idx.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(count(&val, 0), 20);
        assert_eq!(count(&val, 1), 4);
        assert_eq!(
            count(&val, 2),
            1,
            "a small class still gets one validation case"
        );
        assert_eq!(count(&train, 2), 2);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>(), "a partition");
    }

    #[test]
    fn singleton_classes_stay_in_train() {
        let mut rng = sample_rng(2, 0);
        let (train, val) = stratified_split(&[0, 1, 1, 1], 0.5, &mut rng);
        assert!(train.contains(&0) && !val.contains(&0));
    }
}
