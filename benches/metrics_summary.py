"""Summarises a pretraining run's metrics.csv (one row per step, as `s2kit pretrain` writes it):
the median of every column over consecutive windows of steps, one line per window, as a
tab-separated table. Standard library only.

Usage: python3 benches/metrics_summary.py RUN_DIR/metrics.csv WINDOW [FIRST_STEP]
  e.g. python3 benches/metrics_summary.py runs/long/pretrain/metrics.csv 2000
"""
import csv
import statistics
import sys


def main(path, window, first):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) >= first]
    if not rows:
        sys.exit(f"{path}: no rows from step {first}")
    columns = [c for c in rows[0] if c != "step"]
    print("steps\t" + "\t".join(columns))
    for start in range(0, len(rows), window):
        chunk = rows[start : start + window]
        medians = [statistics.median(float(r[c]) for r in chunk) for c in columns]
        print(
            f"{chunk[0]['step']}-{chunk[-1]['step']}\t"
            + "\t".join(f"{m:.4g}" for m in medians)
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
