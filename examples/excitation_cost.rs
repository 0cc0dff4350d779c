//! Cost of one channel of each excitation method at a given length.
//!
//! Run: `cargo run --release --example excitation_cost -- 256`
//! Prints microseconds per channel, single-threaded, averaged over 2,000 draws.

use s2kit::excitation::{
    Arma, ArmaConfig, Excitation, ForecastPfn, ForecastPfnConfig, Imf, ImfConfig, KernelSynth,
    KernelSynthConfig, Mixture, MixtureConfig,
};
use s2kit::rng::sample_rng;
use std::time::Instant;

fn main() {
    let len: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let methods: Vec<(&str, Box<dyn Excitation>)> = vec![
        ("mixture", Box::new(Mixture::new(MixtureConfig::default()))),
        ("arma", Box::new(Arma::new(ArmaConfig::default()))),
        (
            "forecast_pfn",
            Box::new(ForecastPfn::new(ForecastPfnConfig::default())),
        ),
        (
            "kernel_synth",
            Box::new(KernelSynth::new(KernelSynthConfig::default(), len)),
        ),
        ("imf", Box::new(Imf::new(ImfConfig::default()))),
    ];
    let draws = 2000;
    println!("length {len}, {draws} draws per method, one thread");
    for (name, m) in methods {
        let mut rng = sample_rng(1, 0);
        let t = Instant::now();
        let mut checksum = 0.0;
        for _ in 0..draws {
            checksum += m.sample(&mut rng, len)[len / 2];
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / draws as f64;
        println!("{name:>13}: {us:8.1} µs/channel   (checksum {checksum:.3e})");
    }
}
