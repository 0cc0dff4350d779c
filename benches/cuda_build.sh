#!/usr/bin/env bash
# Compiles the `cuda` feature on a machine without a GPU or a system CUDA toolkit: nvcc, the
# CUDA runtime headers, CCCL, cuBLAS and cuRAND come from PyPI (CUDA 13's wheels; the cu12
# nvcc wheel ships only ptxas) into a venv, candle's build is pointed at them (CUDA_ROOT,
# PATH, CUDA_COMPUTE_CAP=90), and `cargo build --release --features cuda` runs in a target
# directory of its own. It proves that the build compiles, not that it runs: that needs a GPU.
#
# Usage: benches/cuda_build.sh    (many minutes on 2 cores; the log is target/cuda-build.log)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/cuda-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
# 13.4: the newest toolkit that candle's cudarc (0.19) recognises.
# nvcc's own parts (nvvm, crt) must be of the same release, or ptxas refuses the PTX.
"$venv/bin/pip" install --quiet "nvidia-cuda-nvcc==13.4.*" "nvidia-nvvm==13.4.*" \
  "nvidia-cuda-crt==13.4.*" "nvidia-cuda-runtime==13.4.*" "nvidia-cuda-cccl<13.4" \
  "nvidia-cuda-nvrtc==13.4.*" nvidia-curand nvidia-cublas
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
root=$site/nvidia/cu13 # every CUDA 13 wheel installs into this one tree
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"
for lib in "$root"/lib/*.so.*; do # unversioned names for the linker
  base=${lib%%.so.*}.so
  [ -f "$base" ] || ln -sfn "$(basename "$lib")" "$base"
done
# libcuda comes with the GPU driver, not with the toolkit. For linking only, a stub exports
# the driver API's names, as the toolkit's own lib64/stubs/libcuda.so does; on a GPU machine
# the driver's libcuda.so.1 is loaded instead.
cudarc=$(ls -d ~/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1)
if [ ! -f "$root/stubs/libcuda.so" ]; then
  [ -n "$cudarc" ] || CARGO_TARGET_DIR=target/cuda cargo fetch --quiet
  cudarc=$(ls -d ~/.cargo/registry/src/*/cudarc-0.19.* | tail -1)
  mkdir -p "$root/stubs"
  grep -oE '^\s+(pub )?fn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/mod.rs" |
    sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/int \1(void) { return 999; }/' | sort -u >"$root/stubs/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/stubs/libcuda.so" "$root/stubs/cuda_stub.c"
fi
export CUDA_ROOT=$root CUDA_PATH=$root CUDA_TOOLKIT_ROOT_DIR=$root CUDA_COMPUTE_CAP=90
export PATH=$root/bin:$PATH LIBRARY_PATH=$root/lib:$root/stubs:${LIBRARY_PATH:-}
nvcc --version | tail -1
CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda 2>&1 |
  tee target/cuda-build.log | tail -20
