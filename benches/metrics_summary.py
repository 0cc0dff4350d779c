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
    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    if not rows:
        sys.exit(f"{path}: no rows")
    unknown = [c for c in means if c not in rows[0]]
    if unknown:
        sys.exit(f"{path}: no column {', '.join(unknown)}")
    columns = [c for c in rows[0] if c != "step"]
    for line, r in enumerate(rows, start=2):
        for c in columns:
            try:
                r[c] = float(r[c])
            except (TypeError, ValueError):
                sys.exit(f"{path}:{line}: column {c} is {r[c]!r}, not a number")
    print("steps\t" + "\t".join(columns))
    for start in range(0, len(rows), window):
        chunk = rows[start : start + window]
        medians = [
            (statistics.mean if c in means else statistics.median)(r[c] for r in chunk)
            for c in columns
        ]
        print(
            f"{chunk[0]['step']}-{chunk[-1]['step']}\t"
            + "\t".join(f"{m:.4g}" for m in medians)
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__.strip().splitlines()[-2])
    try:
        window = int(args[1])
    except ValueError:
        window = 0
    if window < 1:
        sys.exit(f"WINDOW {args[1]!r} must be a whole number of steps, at least 1")
    means, rest = [], args[2:]
    while rest:
        flag = rest.pop(0)
        if flag != "--mean" or not rest:
            sys.exit(f"{flag}: expected --mean COLUMN")
        means.append(rest.pop(0))
    main(args[0], window, means)
