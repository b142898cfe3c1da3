//! The site report's charts: a day's level history with its limits, a band spectrum, and the
//! sound events on a timeline. Times are hours of the local day (0–24).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{colour, err, font, legend, short, Figure, GREY};

/// LAeq of each report and LAFmax over a day, the limit lines, the periods over a limit
/// shaded.
#[derive(Debug, Clone)]
pub struct LevelHistory {
    /// The title line.
    pub title: String,
    /// "dB" or "dBFS".
    pub unit: String,
    /// (hour of the start, hour of the end, LAeq) per report.
    pub laeq: Vec<(f64, f64, f64)>,
    /// (hour, LAFmax) per report.
    pub lamax: Vec<(f64, f64)>,
    /// (name, threshold) of the limit rules on LAeq or LAFmax.
    pub limits: Vec<(String, f64)>,
    /// (from hour, to hour) of the periods over a limit.
    pub over: Vec<(f64, f64)>,
}

impl Figure for LevelHistory {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let values = self
            .laeq
            .iter()
            .map(|v| v.2)
            .chain(self.lamax.iter().map(|v| v.1))
            .chain(self.limits.iter().map(|l| l.1));
        let (lo, hi) = db_range(values);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..24.0f64, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(13)
            .x_label_formatter(&|h| format!("{:02}:00", *h as u32))
            .x_desc("local time")
            .y_desc(&self.unit)
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        let shade = RGBColor(214, 39, 40).mix(0.15).filled();
        chart
            .draw_series(
                self.over
                    .iter()
                    .map(|&(a, b)| Rectangle::new([(a, lo), (b, hi)], shade)),
            )
            .map_err(err)?;
        // LAeq as steps (each report holds its level over its interval), LAFmax at the
        // reports' starts; both broken where reports are missing
        let pieces = split(&self.laeq);
        for (k, piece) in pieces.iter().enumerate() {
            let max = piece.iter().map(|&(a, _, _)| {
                let at = self.lamax.iter().find(|m| (m.0 - a).abs() < 1e-9);
                (a, at.map_or(f64::NAN, |m| m.1))
            });
            let s = chart
                .draw_series(LineSeries::new(max, colour(1).mix(0.8).stroke_width(1)))
                .map_err(err)?;
            if k == 0 {
                s.label("LAFmax").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour(1).stroke_width(2))
                });
            }
            let steps = piece.iter().flat_map(|&(a, b, v)| [(a, v), (b, v)]);
            let s = chart
                .draw_series(LineSeries::new(steps, colour(0).stroke_width(2)))
                .map_err(err)?;
            if k == 0 {
                s.label("LAeq").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour(0).stroke_width(2))
                });
            }
        }
        for (i, (name, t)) in self.limits.iter().enumerate() {
            let c = colour(3 + i);
            chart
                .draw_series(LineSeries::new([(0.0, *t), (24.0, *t)], c.stroke_width(2)))
                .map_err(err)?
                .label(short(name, 40))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        }
        legend(&mut chart)
    }
}

/// A level axis around `values`: from 5 dB under the tens below the lowest to 5 dB over the
/// tens above the highest (0–100 dB without values; NaN, a band without measurements, is
/// left out).
fn db_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() {
        (
            (lo / 10.0).floor() * 10.0 - 5.0,
            (hi / 10.0).ceil() * 10.0 + 5.0,
        )
    } else {
        (0.0, 100.0)
    }
}

/// Runs of contiguous intervals (a gap of more than a second splits them).
fn split(steps: &[(f64, f64, f64)]) -> Vec<Vec<(f64, f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    for &s in steps {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|p| s.0 - p.1 <= 1.0 / 3600.0) => run.push(s),
            _ => out.push(vec![s]),
        }
    }
    out
}

/// Band levels of a few periods, one line each over the bands.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// The title line.
    pub title: String,
    /// "dB" or "dBFS".
    pub unit: String,
    /// The bands' nominal frequencies, lowest first.
    pub bands: Vec<String>,
    /// (name, level per band).
    pub series: Vec<(String, Vec<f64>)>,
}

impl Figure for Spectrum {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.bands.len().max(1);
        let (lo, hi) = db_range(self.series.iter().flat_map(|s| s.1.iter().copied()));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..(n as f64 - 1.0).max(1.0), lo..hi)
            .map_err(err)?;
        let bands = self.bands.clone();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| bands.get(x.round() as usize).cloned().unwrap_or_default())
            .x_desc("band, Hz")
            .y_desc(&self.unit)
            .label_style(font(11))
            .draw()
            .map_err(err)?;
        for (i, (name, levels)) in self.series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(
                    levels.iter().enumerate().map(|(k, v)| (k as f64, *v)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(short(name, 40))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        }
        legend(&mut chart)
    }
}

/// Events as bars on a day, a row per label.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The title line.
    pub title: String,
    /// (label, [(from hour, to hour)]).
    pub rows: Vec<(String, Vec<(f64, f64)>)>,
}

impl Timeline {
    /// The picture size for its rows.
    pub fn size(&self) -> (u32, u32) {
        (1100, 110 + 30 * self.rows.len().max(1) as u32)
    }
}

impl Figure for Timeline {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.rows.len().max(1);
        let names: Vec<String> = self.rows.iter().map(|r| short(&r.0, 28)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(200)
            .build_cartesian_2d(0.0..24.0f64, 0.0..n as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(13)
            .x_label_formatter(&|h| format!("{:02}:00", *h as u32))
            .y_labels(n.min(40) * 2 + 1)
            .y_label_formatter(&|y| {
                let k = y - y.floor();
                if (k - 0.5).abs() < 1e-6 {
                    names.get(y.floor() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        for (i, (_, spans)) in self.rows.iter().enumerate() {
            let c = if self.rows.is_empty() {
                GREY
            } else {
                colour(i)
            };
            // at least 3 minutes wide, so a short event is seen
            chart
                .draw_series(spans.iter().map(|&(a, b)| {
                    Rectangle::new(
                        [(a, i as f64 + 0.2), (b.max(a + 0.05), i as f64 + 0.8)],
                        c.filled(),
                    )
                }))
                .map_err(err)?;
        }
        Ok(())
    }
}
