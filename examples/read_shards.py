"""Read an s2kit shard with plain h5py and numpy (no s2kit, no HDF5 plugins).

Usage: python examples/read_shards.py corpus/shard-000000.h5 [--check]

Prints the shard's attributes and its first samples. With --check, it also verifies the
layout invariants and, for explicit samples, re-evaluates each symbol with numpy on the
stored inputs and compares it with the stored outputs.
"""
import json
import sys

import h5py
import numpy as np

# The infix syntax of s2kit symbols, mapped onto numpy (variables are x0..x5).
NUMPY_NAMES = {
    "abs": np.abs, "sqrt": np.sqrt, "ln": np.log, "exp": np.exp, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "atan": np.arctan,
}


def evaluate(symbol, inputs):
    env = dict(NUMPY_NAMES)
    env.update({f"x{i}": row.astype(np.float64) for i, row in enumerate(inputs)})
    with np.errstate(all="ignore"):
        return eval(symbol.replace("^", "**"), {"__builtins__": {}}, env)


def main():
    path = sys.argv[1]
    check = "--check" in sys.argv[2:]
    with h5py.File(path, "r") as f:
        print({k: (v if k != "config" else "<preset JSON>") for k, v in f.attrs.items()})
        config = json.loads(f.attrs["config"])
        inputs, outputs = f["inputs"][:], f["outputs"][:]
        in_off, out_off = f["input_offsets"][:], f["output_offsets"][:]
        symbols = [s.decode() if isinstance(s, bytes) else s for s in f["symbols"][:]]
        ids, kinds = f["sample_id"][:], f["kind"][:]
        n = len(ids)
        print(f"{n} samples, inputs {inputs.shape}, outputs {outputs.shape}, length {config['length']}")
        for i in range(min(n, 3)):
            x = inputs[in_off[i]:in_off[i + 1]]
            y = outputs[out_off[i]:out_off[i + 1]]
            kind = "ode" if kinds[i] == 1 else "explicit"
            print(f"sample {ids[i]} ({kind}): x {x.shape}, y {y.shape}")
            for s in symbols[out_off[i]:out_off[i + 1]]:
                print("   ", s[:100])
        if check:
            assert len(in_off) == n + 1 and len(out_off) == n + 1
            assert in_off[-1] == inputs.shape[0] and out_off[-1] == outputs.shape[0]
            assert len(symbols) == outputs.shape[0]
            worst = 0.0
            for i in range(n):
                if kinds[i] != 0:
                    continue
                x = inputs[in_off[i]:in_off[i + 1]]
                for r in range(out_off[i], out_off[i + 1]):
                    got = evaluate(symbols[r], x)
                    want = outputs[r].astype(np.float64)
                    # numpy's maths library may differ from Rust's in the last bit; s2kit
                    # rejects outputs that amplify such differences, so 1e-4 of the output's
                    # scale holds.
                    scale = np.maximum(np.abs(want), np.std(want))
                    worst = max(worst, float(np.max(np.abs(got - want) / scale)))
            assert worst <= 1e-4, f"symbol re-evaluation error {worst}"
            print(f"check passed: layout consistent, worst relative error {worst:.2e}")


if __name__ == "__main__":
    main()
