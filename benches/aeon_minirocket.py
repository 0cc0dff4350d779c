"""aeon's MiniRocket classifier on the bundled sets, for comparison with
`s2kit transfer --model minirocket --protocol linear`. Prints NAME accuracy per seed.

Usage: python benches/aeon_minirocket.py SEEDS DATASET_DIR [...]
"""
import os
import sys

from aeon.classification.convolution_based import MiniRocketClassifier
from aeon.datasets import load_from_ts_file


def main(seeds, dirs):
    for d in dirs:
        name = os.path.basename(d.rstrip("/"))
        xtr, ytr = load_from_ts_file(os.path.join(d, f"{name}_TRAIN.ts"))
        xte, yte = load_from_ts_file(os.path.join(d, f"{name}_TEST.ts"))
        accs = []
        for seed in range(seeds):
            clf = MiniRocketClassifier(random_state=seed)
            clf.fit(xtr, ytr)
            accs.append(float((clf.predict(xte) == yte).mean()))
        print(name, " ".join(f"{a:.4f}" for a in accs))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
