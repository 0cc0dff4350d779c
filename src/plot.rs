//! PNG line plots: a grid of titled panels, each with one or more series. Text uses a bundled
//! font (DejaVu Sans Mono, see assets/), so plots render the same on any machine.

use crate::checks::check_output_file;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "s2kit-mono";

/// One panel: a title and the series drawn in it (x is the index); a panel without series
/// is left blank.
pub struct Panel {
    pub title: String,
    pub series: Vec<Vec<f32>>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is known to be valid; a failure here is a build defect.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("bundled font failed to load"));
    });
}

/// Shortens `s` to at most `max` characters, marking the cut.
fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The largest image drawn (about 300 MB of bitmap).
const MAX_PIXELS: u64 = 100_000_000;

/// Draws `panels` row by row, `columns` per row, each `panel_size` pixels, to the PNG `path`.
pub fn render_panels(
    path: &Path,
    panels: &[Panel],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<()> {
    check_output_file(path, true)?;
    let refuse = |why: String| Error::Request(format!("{}: {why}", path.display()));
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        return Err(refuse(
            "the plot is a PNG: give a file name ending in .png".into(),
        ));
    }
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let (width, height) = (
        panel_size.0 as u64 * columns as u64,
        panel_size.1 as u64 * rows as u64,
    );
    // The bitmap is held in memory at 3 bytes a pixel.
    if width * height > MAX_PIXELS {
        return Err(refuse(format!(
            "a {width} x {height} image is more than {} megapixels; draw fewer samples",
            MAX_PIXELS / 1_000_000
        )));
    }
    let size = (width as u32, height as u32);
    register_font();
    let err = |e: &dyn std::fmt::Display| {
        Error::Other(format!("{}: cannot draw plot: {e}", path.display()))
    };
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, columns));
    let title_chars = (panel_size.0 as usize / 7).max(8);
    for (panel, area) in panels.iter().zip(areas.iter()) {
        if panel.series.is_empty() {
            continue; // a placeholder keeps the grid aligned
        }
        let values = panel.series.iter().flatten().filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let len = panel
            .series
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(1)
            .max(2);
        let mut chart = ChartBuilder::on(area)
            .caption(ellipsize(&panel.title, title_chars), (FAMILY, 12))
            .margin(6)
            .x_label_area_size(18)
            .y_label_area_size(48)
            .build_cartesian_2d(0f32..(len - 1) as f32, (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .label_style((FAMILY, 10))
            .x_labels(5)
            .y_labels(5)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in panel.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.iter().enumerate().map(|(t, v)| (t as f32, *v)),
                    &color,
                ))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
