"""The objective comparison as one table: each KIND's OUT/KIND/final.tsv (from
benches/objective_final.sh) with its pretraining time (OUT/KIND/wall.txt), as TSV on
stdout (objective, readout, the four sets, mean), then a Markdown version of the same rows.

Usage: python benches/objective_table.py OUT KIND [...]
"""
import csv
import sys

SETS = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels"]


def main(out, kinds):
    rows = []
    for kind in kinds:
        with open(f"{out}/{kind}/final.tsv") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                rows.append([kind, r["readout"]] + [r[s] for s in SETS] + [r["mean"]])
    print("\t".join(["objective", "readout"] + SETS + ["mean"]))
    for r in rows:
        print("\t".join(r))
    print()
    print("| objective | readout | " + " | ".join(SETS) + " | mean |")
    print("|---" * (len(SETS) + 3) + "|")
    for r in rows:
        cells = [r[0], r[1]] + ["%.3f" % float(v) for v in r[2:]]
        print("| " + " | ".join(cells) + " |")
    print()
    for kind in kinds:
        try:
            print(f"- {kind}: {open(f'{out}/{kind}/wall.txt').read().strip()}")
        except FileNotFoundError:
            print(f"- {kind}: no wall.txt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
