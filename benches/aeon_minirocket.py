"""aeon's MiniRocket classifier on the bundled sets, for comparison with
`s2kit transfer --model minirocket --protocol linear`. Prints NAME accuracy per seed.
aeon's MiniRocket takes equal-length series only: unequal ones (JapaneseVowels) are
resampled by linear interpolation to the longest TRAIN case, as s2kit does.

Usage: python benches/aeon_minirocket.py SEEDS DATASET_DIR [...]
"""
import os
import sys

import numpy as np
from aeon.classification.convolution_based import MiniRocketClassifier
from aeon.datasets import load_from_ts_file


def equal_length(x, length):
    """A list of [channels, time] cases as one [n, channels, length] array."""
    if isinstance(x, np.ndarray):
        return x
    out = np.empty((len(x), x[0].shape[0], length))
    for i, case in enumerate(x):
        old = np.linspace(0.0, 1.0, case.shape[1])
        new = np.linspace(0.0, 1.0, length)
        for c in range(case.shape[0]):
            out[i, c] = np.interp(new, old, case[c])
    return out


def main(seeds, dirs):
    for d in dirs:
        name = os.path.basename(d.rstrip("/"))
        xtr, ytr = load_from_ts_file(os.path.join(d, f"{name}_TRAIN.ts"))
        xte, yte = load_from_ts_file(os.path.join(d, f"{name}_TEST.ts"))
        if not isinstance(xtr, np.ndarray):
            length = max(case.shape[1] for case in xtr)
            xtr, xte = equal_length(xtr, length), equal_length(xte, length)
        accs = []
        for seed in range(seeds):
            clf = MiniRocketClassifier(random_state=seed)
            clf.fit(xtr, ytr)
            accs.append(float((clf.predict(xte) == yte).mean()))
        print(name, " ".join(f"{a:.4f}" for a in accs))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
