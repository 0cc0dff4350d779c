"""Reads a file written by `s2kit embed` with plain h5py and numpy, and with --check
verifies its layout: feature matrices of one width, integer labels that index class_names,
and the attributes. Prints the shapes.

Usage: python examples/read_embedding.py FEATURES.h5 [--check]
"""
import sys

import h5py
import numpy as np


def main(path, check):
    with h5py.File(path, "r") as f:
        xtr, ytr = f["train_features"][:], f["train_labels"][:]
        xte, yte = f["test_features"][:], f["test_labels"][:]
        ltr, lte = f["train_levels"][:], f["test_levels"][:]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["class_names"][:]]
        attrs = {k: f.attrs[k] for k in ("dataset", "model", "layer", "length")}
    print(f"{attrs['dataset']} ({attrs['model']}): train {xtr.shape}, test {xte.shape}, classes {names}")
    if not check:
        return
    assert xtr.dtype == np.float32 and xte.dtype == np.float32, (xtr.dtype, xte.dtype)
    assert xtr.ndim == 2 and xte.ndim == 2 and xtr.shape[1] == xte.shape[1] > 0
    assert ytr.shape == (xtr.shape[0],) and yte.shape == (xte.shape[0],)
    assert np.issubdtype(ytr.dtype, np.integer) and np.issubdtype(yte.dtype, np.integer)
    for y in (ytr, yte):
        assert y.min() >= 0 and y.max() < len(names), (y.min(), y.max(), names)
    assert np.isfinite(xtr).all() and np.isfinite(xte).all()
    assert ltr.shape[0] == xtr.shape[0] and lte.shape[0] == xte.shape[0]
    assert ltr.shape[1] == lte.shape[1] > 0 and ltr.shape[1] % 2 == 0, (ltr.shape, lte.shape)
    assert np.isfinite(ltr).all() and np.isfinite(lte).all()
    assert len(set(ytr.tolist())) == len(names), "every class occurs in TRAIN"
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], "--check" in sys.argv[2:])
