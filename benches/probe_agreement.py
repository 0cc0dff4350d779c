"""scikit-learn on the features `s2kit embed` wrote: StandardScaler on TRAIN, then
RidgeClassifierCV(alphas=logspace(-3, 3, 10)) with its leave-one-out selection, the same
protocol as `s2kit transfer --protocol linear`. With --levels, as `transfer --levels`: the
standardised channel levels are appended times a weight w in (0, 1, 3, 10, 30), and w is the
one with the best leave-one-out score (the first of equal ones). Prints one line per file:
NAME  sklearn_accuracy  chosen_alpha  [chosen_w].

Usage: python benches/probe_agreement.py [--levels] FEATURES.h5 [...]
"""
import sys

import h5py
import numpy as np
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import StandardScaler


def probe(xtr, ytr, xte, yte, ltr=None, lte=None):
    """TEST accuracy of the probe, its alpha and (given levels) the levels' weight."""
    scaler = StandardScaler().fit(xtr)
    ftr, fte = scaler.transform(xtr), scaler.transform(xte)
    best = None
    for w in (0.0, 1.0, 3.0, 10.0, 30.0) if ltr is not None else (None,):
        if w is None:
            atr, ate = ftr, fte
        else:
            lscaler = StandardScaler().fit(ltr)
            atr = np.hstack([ftr, w * lscaler.transform(ltr)])
            ate = np.hstack([fte, w * lscaler.transform(lte)])
        clf = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(atr, ytr)
        if best is None or clf.best_score_ > best[0]:
            best = (clf.best_score_, w, clf, ate)
    _, w, clf, ate = best
    return float((clf.predict(ate) == yte).mean()), clf.alpha_, w


def main(paths, levels):
    for path in paths:
        with h5py.File(path, "r") as f:
            data = [f[k][:] for k in ("train_features", "train_labels", "test_features", "test_labels")]
            if levels:
                data += [f["train_levels"][:], f["test_levels"][:]]
            name = f.attrs["dataset"]
        acc, alpha, w = probe(*data)
        print(f"{name} {acc:.4f} {alpha:.4g}" + ("" if w is None else f" {w:g}"))


if __name__ == "__main__":
    args = sys.argv[1:]
    main([a for a in args if a != "--levels"], "--levels" in args)
