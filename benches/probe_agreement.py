"""scikit-learn on the features `s2kit embed` wrote: StandardScaler on TRAIN, then
RidgeClassifierCV(alphas=logspace(-3, 3, 10)) with its leave-one-out selection, the same
protocol as `s2kit transfer --protocol linear`. Prints one line per file:
NAME  sklearn_accuracy  chosen_alpha.

Usage: python benches/probe_agreement.py FEATURES.h5 [...]
"""
import sys

import h5py
import numpy as np
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import StandardScaler


def main(paths):
    for path in paths:
        with h5py.File(path, "r") as f:
            xtr, ytr = f["train_features"][:], f["train_labels"][:]
            xte, yte = f["test_features"][:], f["test_labels"][:]
            name = f.attrs["dataset"]
        scaler = StandardScaler().fit(xtr)
        clf = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))
        clf.fit(scaler.transform(xtr), ytr)
        acc = float((clf.predict(scaler.transform(xte)) == yte).mean())
        print(f"{name} {acc:.4f} {clf.alpha_:.4g}")


if __name__ == "__main__":
    main(sys.argv[1:])
