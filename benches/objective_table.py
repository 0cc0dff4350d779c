"""The objective comparison as one TSV table on stdout: every readout of each KIND's
OUT/KIND/final.tsv (from benches/objective_final.sh), one row each: objective, readout, the
four sets, mean.

Usage: python benches/objective_table.py OUT KIND [...] > docs/objectives/table.tsv
"""
import csv
import sys

SETS = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels"]


def main(out, kinds):
    print("\t".join(["objective", "readout"] + SETS + ["mean"]))
    for kind in kinds:
        with open(f"{out}/{kind}/final.tsv") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                print("\t".join([kind, r["readout"]] + [r[s] for s in SETS] + [r["mean"]]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
