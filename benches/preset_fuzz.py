#!/usr/bin/env python3
"""Every numeric key of a generator preset, set to hostile values, must give either a clean
run or a one-line refusal: never a panic, an abort, a hang or a multi-line error.

Usage: benches/preset_fuzz.py [S2KIT_BINARY] [PRESET]
(defaults: target/release/s2kit, generators/mixed.toml). The full configuration, defaults
included, is read back from a 4-sample corpus's manifest; each try writes it as TOML with one
value replaced and runs `generate --samples 6 --threads 1` under a 20 s timeout and a 6 GB
address-space limit. Prints one line per failure and a count; exits 1 if any failed.
"""
import json, math, os, subprocess, sys, tempfile

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/s2kit"
PRESET = sys.argv[2] if len(sys.argv) > 2 else "generators/mixed.toml"
HOSTILE = [float("inf"), float("nan"), -1, 0, 10**9, 1e300]


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(cfg, prefix=""):
    """Scalars and arrays of a table first, then its sub-tables."""
    lines = []
    tables = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {toml_value(v)}")
    out = "\n".join(lines) + "\n"
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n[{name}]\n" + to_toml(v, name + ".")
    return out


def numeric_paths(cfg, path=()):
    for k, v in cfg.items():
        p = path + (k,)
        if isinstance(v, dict):
            yield from numeric_paths(v, p)
        elif isinstance(v, bool):
            continue
        elif isinstance(v, (int, float)):
            yield p, None
        elif isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            for i in range(min(len(v), 2)):
                yield p, i


def replaced(cfg, path, index, value):
    cfg = json.loads(json.dumps(cfg))
    node = cfg
    for k in path[:-1]:
        node = node[k]
    if index is None:
        old = node[path[-1]]
        node[path[-1]] = value
    else:
        old = node[path[-1]][index]
        node[path[-1]][index] = value
    # Integers stay integers where the key is an integer (TOML types are checked).
    if isinstance(old, int) and isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(old, int) and isinstance(value, float):
        value = int(value) if value < 1e18 else None
        if value is None:
            return None
    return cfg


def main():
    tmp = tempfile.mkdtemp()
    subprocess.run([BIN, "generate", "--config", PRESET, "--samples", "4", "--shard-size", "4",
                    "--out", f"{tmp}/base"], check=True, capture_output=True)
    full = json.load(open(f"{tmp}/base/manifest.json"))["config"]
    tries = failures = 0
    for path, index in numeric_paths(full):
        for value in HOSTILE:
            cfg = replaced(full, path, index, value)
            if cfg is None:
                continue
            tries += 1
            name = ".".join(path) + (f"[{index}]" if index is not None else "") + f" = {value}"
            preset = f"{tmp}/p.toml"
            open(preset, "w").write(to_toml(cfg))
            out = f"{tmp}/out{tries}"
            cmd = f"ulimit -v 6000000; exec timeout -k 2 20 {BIN} generate --config {preset} --samples 6 --threads 1 --out {out}"
            r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
            err = r.stderr.strip()
            bad = None
            if r.returncode in (124, 137):
                bad = "timeout"
            elif "panicked" in err or r.returncode >= 128 or r.returncode < 0:
                bad = f"crash rc={r.returncode}"
            elif r.returncode != 0 and len(err.splitlines()) != 1:
                bad = "multi-line error"
            if bad:
                failures += 1
                print(f"FAIL {name}: {bad}: {err.splitlines()[0][:150] if err else ''}")
            subprocess.run(["rm", "-rf", out])
    print(f"{tries - failures} of {tries} tries behaved ({PRESET})")
    sys.exit(1 if failures else 0)


main()
