//! Progress bars: drawn only on a terminal, so logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar over `total` items labelled `unit`, with rate and ETA.
pub fn bar(total: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}] {{msg}}");
    pb.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    pb
}
