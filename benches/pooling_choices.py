"""The pooling of a patch transformer's readout, compared with scikit-learn's copy of the
linear probe (benches/probe_agreement.py, which agrees with s2kit's to every printed digit):
[CLS] alone, the mean of the patch states alone, both (s2kit's readout), and both at every
layer concatenated. `s2kit embed` writes, per channel, [CLS] (d values) then the patch mean
(d values); this script takes the files of each layer of one encoder and splits them.
Prints one row per pooling, without and with channel levels:
  pooling  GunPoint  ItalyPowerDemand  BasicMotions  JapaneseVowels  mean

Usage: python benches/pooling_choices.py D_MODEL DIR
  DIR holds SET-layerL.h5 for each bundled set and every layer L (benches/pooling_choices.sh).
"""
import glob
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from probe_agreement import probe  # noqa: E402

SETS = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels"]


def columns(width, d, part):
    """The columns of `part` (0: [CLS], 1: patch mean) in every channel's block of 2d."""
    return [c for c in range(width) if (c % (2 * d)) // d == part]


def main(d, folder):
    layers = sorted(int(p.rsplit("layer", 1)[1][:-3]) for p in glob.glob(f"{folder}/{SETS[0]}-layer*.h5"))
    rows = {}
    for s in SETS:
        files = [h5py.File(f"{folder}/{s}-layer{layer}.h5", "r") for layer in layers]
        ytr, yte = files[0]["train_labels"][:], files[0]["test_labels"][:]
        ltr, lte = files[0]["train_levels"][:], files[0]["test_levels"][:]
        last = files[-1]
        xtr, xte = last["train_features"][:], last["test_features"][:]
        width = xtr.shape[1]
        variants = {
            "[CLS], last layer": columns(width, d, 0),
            "patch mean, last layer": columns(width, d, 1),
            "[CLS] + patch mean, last layer": list(range(width)),
        }
        for name, cols in variants.items():
            split = (xtr[:, cols], ytr, xte[:, cols], yte)
            rows.setdefault(name, []).append(probe(*split)[0])
            rows.setdefault(name + " + levels", []).append(probe(*split, ltr, lte)[0])
        every = (
            np.hstack([f["train_features"][:] for f in files]),
            ytr,
            np.hstack([f["test_features"][:] for f in files]),
            yte,
        )
        name = f"[CLS] + patch mean, layers {layers[0]}-{layers[-1]} joined"
        rows.setdefault(name, []).append(probe(*every)[0])
        rows.setdefault(name + " + levels", []).append(probe(*every, ltr, lte)[0])
    print("pooling\t" + "\t".join(SETS) + "\tmean")
    for name, accs in rows.items():
        print(name + "".join(f"\t{a:.4f}" for a in accs) + f"\t{np.mean(accs):.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
