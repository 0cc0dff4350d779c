"""Summarises a pretraining run's metrics.csv (one row per step, as `s2kit pretrain` writes it):
the median of every column over consecutive windows of steps, one line per window, as a
tab-separated table; the columns named by --mean get their mean instead (a median of
in-batch accuracies lands on a multiple of 1/batch). Standard library only.

Usage: python3 benches/metrics_summary.py RUN_DIR/metrics.csv WINDOW [--mean COLUMN]...
  e.g. python3 benches/metrics_summary.py runs/long/pretrain/metrics.csv 2500 --mean retrieval_top1
"""
import csv
import statistics
import sys


def main(path, window, means):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    unknown = [c for c in means if c not in rows[0]]
    if unknown:
        sys.exit(f"{path}: no column {', '.join(unknown)}")
    columns = [c for c in rows[0] if c != "step"]
    print("steps\t" + "\t".join(columns))
    for start in range(0, len(rows), window):
        chunk = rows[start : start + window]
        medians = [
            (statistics.mean if c in means else statistics.median)(float(r[c]) for r in chunk)
            for c in columns
        ]
        print(
            f"{chunk[0]['step']}-{chunk[-1]['step']}\t"
            + "\t".join(f"{m:.4g}" for m in medians)
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    means = [args[i + 1] for i, a in enumerate(args) if a == "--mean" and i + 1 < len(args)]
    main(args[0], int(args[1]), means)
