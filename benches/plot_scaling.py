"""Plots frozen-feature accuracy (mean over the four bundled sets) against pairs seen in
pretraining, from the tables `benches/scaling_study.sh` writes: one line per model and layer,
the random initialisation (step 0) drawn at the left edge, MiniRocket as a reference line.

Usage: python benches/plot_scaling.py OUT.png MINIROCKET_MEAN LABEL=scaling.tsv[+more.tsv][@LAYER] [...]
(with @LAYER, that table's line for that layer only; tables joined by + make one line, as when
a later run adds points to a study). A spec ~LABEL=LO:HI shades the accuracies from LO to HI
(the spread of random initialisations, say).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(out, minirocket, tables):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for spec in tables:
        label, path = spec.split("=", 1)
        if label.startswith("~"):
            lo, hi = (float(v) for v in path.split(":"))
            ax.axhspan(lo, hi, color="grey", alpha=0.15, label=label[1:])
            continue
        paths, _, only = path.partition("@")
        rows = []
        for path in paths.split("+"):
            with open(path) as f:
                rows += list(csv.DictReader(f, delimiter="\t"))
        for layer in sorted({r["layer"] for r in rows}):
            if only and layer != only:
                continue
            pts = sorted((int(r["pairs_seen"]), float(r["mean"])) for r in rows if r["layer"] == layer)
            xs = [max(p, 1e3) for p, _ in pts]  # step 0 sits at the left edge
            ax.plot(xs, [a for _, a in pts], marker="o", label=f"{label}, layer {layer}")
    ax.axhline(minirocket, color="grey", linestyle="--", label=f"MiniRocket ({minirocket:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("pairs seen in pretraining (random init drawn at 10^3)")
    ax.set_ylabel("linear-probe accuracy, mean of 4 sets")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3:])
