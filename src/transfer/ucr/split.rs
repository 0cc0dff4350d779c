//! Stratified hold-out and k-fold splits of TRAIN: the validation cases that model selection
//! uses instead of TEST.

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

/// Deals case indices into `k` folds class by class, so that every fold holds about 1/k of
/// every class, and returns each fold as (train: the other folds, validation: the fold), as
/// `stratified_split` does. Each class starts where the previous one stopped, so fold sizes
/// differ by at most one; a class with fewer than `k` cases is in fewer than `k` folds. With
/// fewer than `k` cases, the empty folds are left out.
pub fn stratified_folds(
    labels: &[usize],
    k: usize,
    rng: &mut impl Rng,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for class in 0..n_classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(rng);
        for i in members {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    folds.retain(|fold| !fold.is_empty());
    let mut fold_of = vec![0; labels.len()];
    for (f, fold) in folds.iter_mut().enumerate() {
        fold.sort_unstable();
        fold.iter().for_each(|&i| fold_of[i] = f);
    }
    (0..folds.len())
        .map(|f| {
            let train = (0..labels.len()).filter(|&i| fold_of[i] != f).collect();
            (train, std::mem::take(&mut folds[f]))
        })
        .collect()
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

    #[test]
    fn folds_partition_the_cases_and_spread_every_class() {
        let labels: Vec<usize> = (0..53)
            .map(|i| usize::from(i >= 40) + usize::from(i >= 50))
            .collect();
        let (trains, folds): (Vec<Vec<usize>>, Vec<Vec<usize>>) =
            stratified_folds(&labels, 5, &mut sample_rng(3, 0))
                .into_iter()
                .unzip();
        assert_eq!(folds.len(), 5);
        for (train, fold) in trains.iter().zip(&folds) {
            let mut both: Vec<usize> = train.iter().chain(fold).copied().collect();
            both.sort_unstable();
            assert_eq!(
                both,
                (0..53).collect::<Vec<_>>(),
                "train is the fold's complement"
            );
        }
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..53).collect::<Vec<_>>(), "a partition");
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        for fold in &folds {
            let count = |c: usize| fold.iter().filter(|&&i| labels[i] == c).count();
            assert_eq!(count(0), 8, "40 cases of class 0 over 5 folds");
            assert_eq!(count(1), 2, "10 cases of class 1 over 5 folds");
        }
        let with_class_2 = folds
            .iter()
            .filter(|f| f.iter().any(|&i| labels[i] == 2))
            .count();
        assert_eq!(with_class_2, 3, "a class of 3 cases lies in 3 folds");
    }
}
