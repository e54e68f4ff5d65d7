//! SVG plots of a run. plotters draws text as SVG `<text>` elements with
//! its built-in size estimate, so no font library is needed.

use crate::harness::Results;
use crate::outcome::Status;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

type PlotResult = Result<(), Box<dyn std::error::Error>>;
type Plotter = fn(&Results, &Path) -> PlotResult;

const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// Writes every plot this run has data for; returns the files written.
pub fn all(results: &Results, dir: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let jobs: [(&str, Plotter); 2] = [("sleeper-cdf.svg", sleeper_cdf), ("rss-per-thread.svg", rss_bars)];
    for (name, f) in jobs {
        let path = dir.join(name);
        match f(results, &path) {
            Ok(()) => written.push(path),
            Err(e) => eprintln!("plot {name}: {e}"),
        }
    }
    written
}

/// Empirical CDF of the sleeper's lateness, log-scale µs, one line per peer.
fn sleeper_cdf(results: &Results, path: &Path) -> PlotResult {
    let series: Vec<(String, Vec<f64>)> = results
        .cells
        .iter()
        .filter(|c| c.scenario.id == "sleeper")
        .filter_map(|c| {
            let o = c.representative()?;
            let mut s: Vec<f64> = o.samples.iter().map(|v| v.max(1.0)).collect();
            if s.is_empty() {
                return None;
            }
            s.sort_by(f64::total_cmp);
            let label = match c.status() {
                Status::Starved => format!("{} (starved: {} wake-ups)", c.peer, s.len()),
                _ => c.peer.to_string(),
            };
            Some((label, s))
        })
        .collect();
    if series.is_empty() {
        return Err("no sleeper samples".into());
    }
    let hi = series.iter().filter_map(|(_, s)| s.last().copied()).fold(10.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("1 ms sleeper among 2 CPU hogs, one worker: lateness CDF", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((1.0..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("lateness past the 1 ms deadline (µs, log scale)")
        .y_desc("fraction of wake-ups")
        .draw()?;
    for (i, (label, s)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let n = s.len() as f64;
        let points = s.iter().enumerate().map(|(k, &v)| (v, (k + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::LowerRight).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// RSS per parked thread, one bar per peer, in KiB.
fn rss_bars(results: &Results, path: &Path) -> PlotResult {
    let bars: Vec<(String, f64)> = results
        .cells
        .iter()
        .filter(|c| c.scenario.id == "rss")
        .filter_map(|c| {
            let s = c.stats()?;
            let n = c.representative().and_then(|o| o.extra.get("threads").copied()).unwrap_or(0.0);
            Some((format!("{} ({n:.0})", c.peer), s.median / 1024.0))
        })
        .collect();
    if bars.is_empty() {
        return Err("no RSS figures".into());
    }
    let top = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("RSS per parked thread (threads parked in brackets)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("KiB per thread")
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, kib))| {
        let mut r = Rectangle::new(
            [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *kib)],
            COLOURS[i % 6].filled(),
        );
        r.set_margin(0, 0, 20, 20);
        r
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, kib))| {
        Text::new(format!("{kib:.1}"), (SegmentValue::CenterOf(i), kib + top * 0.03), ("sans-serif", 14))
    }))?;
    root.present()?;
    Ok(())
}
