//! Process-wide CPU settings for training, applied once at start-up, before any thread exists
//! (by the CLI and by the benchmark programs).
//!
//! - candle's element-wise ops run on its own spinning thread pool (`CANDLE_NUM_THREADS`,
//!   by default one thread per core). On a small model's short ops the spinning costs more
//!   than it saves: a tiny pretraining step took 85 ms with two such threads and 44 ms with
//!   one, on 2 cores. So unless the user set it, it is 1; the cores are used instead by
//!   GEMMs and by the data-parallel blocks of a step, both on rayon's pool
//!   (`RAYON_NUM_THREADS`, by default one thread per logical core).
//! - glibc returns freed blocks above its mmap threshold to the kernel and trims the heap, so
//!   the next step's tensors fault their pages in again (up to 12% of a step in kernel page
//!   faults). Large thresholds keep the memory of one step for the next.

/// Applies the settings above. Call it first thing in `main`.
pub fn configure() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Sound here: nothing else runs yet (the contract of this function).
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts; blocks below it come from the heap.
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// The device named on the command line: `cpu`, or `cuda` / `cuda:N` in a build with the
/// `cuda` feature.
pub fn device(name: &str) -> crate::Result<candle_core::Device> {
    let usage = |why: String| crate::Error::Request(format!("--device {name}: {why}"));
    let ordinal = match name {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" => 0,
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(usage("expected cpu, cuda or cuda:N".into())),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(usage(
            "this build has no CUDA support; rebuild with `--features cuda`".into(),
        ));
    }
    candle_core::Device::new_cuda(ordinal).map_err(|e| usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_or_explain() {
        assert!(device("cpu").unwrap().is_cpu());
        for (name, needle) in [("gpu", "cpu, cuda or cuda:N"), ("cuda:x", "cuda:N")] {
            let err = device(name).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        if !cfg!(feature = "cuda") {
            let err = device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
