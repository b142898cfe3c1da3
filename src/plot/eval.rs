//! The charts of `eval --out`: ROC and precision-recall curves per label, a per-label bar
//! chart, score histograms (positives against the rest) and the confusion heat map.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{colour, err, font, legend, short, Figure, GREY};

/// Panels per row of a grid of per-label charts.
const COLUMNS: usize = 4;
/// The pixel size of one panel.
const PANEL: (u32, u32) = (320, 280);

/// The size of a grid of `n` panels.
pub fn grid_size(n: usize) -> (u32, u32) {
    let cols = n.clamp(1, COLUMNS);
    let rows = n.max(1).div_ceil(COLUMNS);
    (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + 40)
}

/// Which curve a [`Curves`] grid draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveKind {
    /// True-positive rate against false-positive rate.
    Roc,
    /// Precision against recall.
    Pr,
}

/// One label's curve: its points (x, y), or why it has none, and a one-line summary.
#[derive(Debug, Clone)]
pub struct Curve {
    /// The label.
    pub label: String,
    /// (x, y) points in order; `None` where the curve is undefined.
    pub points: Option<Vec<(f64, f64)>>,
    /// e.g. `AP 0.912`, or why there is no curve.
    pub note: String,
}

/// A grid of ROC or PR curves, one panel per label.
#[derive(Debug, Clone)]
pub struct Curves {
    /// The title line.
    pub title: String,
    /// ROC or PR.
    pub kind: CurveKind,
    /// One per label.
    pub curves: Vec<Curve>,
}

fn caption<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(err)?;
    root.titled(title, font(18)).map_err(err)
}

fn panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    n: usize,
) -> Vec<DrawingArea<DB, Shift>> {
    let rows = n.max(1).div_ceil(COLUMNS);
    let cols = n.clamp(1, COLUMNS);
    area.split_evenly((rows, cols))
}

impl Figure for Curves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = caption(root, &self.title)?;
        let (x_desc, y_desc) = match self.kind {
            CurveKind::Roc => ("false-positive rate", "true-positive rate"),
            CurveKind::Pr => ("recall", "precision"),
        };
        for (i, (panel, curve)) in panels(&area, self.curves.len())
            .iter()
            .zip(&self.curves)
            .enumerate()
        {
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{} — {}", short(&curve.label, 22), curve.note),
                    font(13),
                )
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0f64, 0.0..1.02f64)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(6)
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(font(10))
                .axis_desc_style(font(11))
                .draw()
                .map_err(err)?;
            if self.kind == CurveKind::Roc {
                chart
                    .draw_series(LineSeries::new(
                        [(0.0, 0.0), (1.0, 1.0)],
                        BLACK.mix(0.3).stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            if let Some(points) = &curve.points {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        colour(i).stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// Per-label bars: AP and F1 at the model's threshold and at the best-F1 threshold.
#[derive(Debug, Clone)]
pub struct Bars {
    /// The title line.
    pub title: String,
    /// (label, AP, F1 at the model's threshold, best F1); undefined values are drawn as 0
    /// and the label says `n/a`.
    pub rows: Vec<(String, Option<f64>, f64, Option<f64>)>,
}

impl Bars {
    /// The picture size for its rows.
    pub fn size(&self) -> (u32, u32) {
        (900, 90 + 54 * self.rows.len().max(1) as u32)
    }
}

impl Figure for Bars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.rows.len().max(1);
        // the first label at the top
        let names: Vec<String> = self
            .rows
            .iter()
            .rev()
            .map(|r| {
                let ap = r.1.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
                format!("{} (AP {ap})", short(&r.0, 24))
            })
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(230)
            // room at the right for the legend, past the largest score
            .build_cartesian_2d(0.0..1.45f64, (0..n - 1).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("score")
            .x_label_formatter(&|x| {
                if *x <= 1.0 + 1e-9 {
                    format!("{x:.1}")
                } else {
                    String::new()
                }
            })
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        let segment = chart.plotting_area().dim_in_pixel().1 as f64 / n as f64;
        let series = ["AP", "F1 at the model's threshold", "best F1"];
        let value = |k: usize, i: usize| match k {
            0 => self.rows[i].1.unwrap_or(0.0),
            1 => self.rows[i].2,
            _ => self.rows[i].3.unwrap_or(0.0),
        };
        for (k, name) in series.into_iter().enumerate() {
            let style = colour(k).filled();
            // three bars stacked inside the label's segment, a fifth of it each
            let top = (segment * (0.15 + 0.24 * k as f64)) as u32;
            let bottom = (segment * (1.0 - 0.15 - 0.24 * k as f64 - 0.2)).max(0.0) as u32;
            let bars = (0..self.rows.len()).map(|i| {
                let y = n - 1 - i;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (value(k, i), SegmentValue::Exact(y + 1)),
                    ],
                    style,
                );
                bar.set_margin(top, bottom, 0, 0);
                bar
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        }
        legend(&mut chart)
    }
}

/// Per label, the histogram of scores of clips with the label and of clips without it.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// The title line.
    pub title: String,
    /// (label, scores of positives, scores of the rest, decision threshold).
    pub panels: Vec<(String, Vec<f64>, Vec<f64>, f64)>,
}

/// Bins of the score histograms over [0, 1].
const BINS: usize = 20;

fn histogram(scores: &[f64]) -> Vec<f64> {
    let mut h = vec![0.0; BINS];
    for &s in scores {
        let b = ((s.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        h[b] += 1.0;
    }
    // shares, so a label's few positives show beside its many negatives
    let n = scores.len().max(1) as f64;
    h.iter_mut().for_each(|v| *v /= n);
    h
}

impl Figure for Histograms {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = caption(root, &self.title)?;
        for (panel, (label, pos, neg, threshold)) in
            panels(&area, self.panels.len()).iter().zip(&self.panels)
        {
            let (hp, hn) = (histogram(pos), histogram(neg));
            let top = hp.iter().chain(&hn).copied().fold(0.0, f64::max).max(0.05) * 1.1;
            let mut chart = ChartBuilder::on(panel)
                .caption(short(label, 30), font(13))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0f64, 0.0..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(5)
                .x_desc("score")
                .y_desc("share of clips")
                .label_style(font(10))
                .axis_desc_style(font(11))
                .draw()
                .map_err(err)?;
            let width = 1.0 / BINS as f64;
            for (k, (h, name, n)) in [(&hn, "without", neg.len()), (&hp, "with", pos.len())]
                .into_iter()
                .enumerate()
            {
                let style = if k == 0 {
                    GREY.mix(0.7).filled()
                } else {
                    colour(0).mix(0.6).filled()
                };
                chart
                    .draw_series(h.iter().enumerate().map(|(b, &v)| {
                        let x = b as f64 * width;
                        Rectangle::new([(x, 0.0), (x + width, v)], style)
                    }))
                    .map_err(err)?
                    .label(format!("{name} ({n})"))
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
            }
            chart
                .draw_series(LineSeries::new(
                    [(*threshold, 0.0), (*threshold, top)],
                    RED.stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperMiddle)
                .background_style(WHITE.mix(0.85))
                .label_font(font(11))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// The confusion matrix as a heat map: rows the truth, columns the decision, each cell's
/// shade its share of the row.
#[derive(Debug, Clone)]
pub struct Heat {
    /// The title line.
    pub title: String,
    /// Row names (truth).
    pub rows: Vec<String>,
    /// Column names (decision).
    pub columns: Vec<String>,
    /// counts[row][column].
    pub counts: Vec<Vec<usize>>,
}

impl Heat {
    /// The picture size for its rows and columns.
    pub fn size(&self) -> (u32, u32) {
        (
            260 + 100 * self.columns.len() as u32,
            160 + 48 * self.rows.len() as u32,
        )
    }
}

impl Figure for Heat {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let (nr, nc) = (self.rows.len(), self.columns.len());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(16))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(200)
            .build_cartesian_2d(
                (0..nc.max(1) - 1).into_segmented(),
                (0..nr.max(1) - 1).into_segmented(),
            )
            .map_err(err)?;
        let name = |names: &[String], v: &SegmentValue<usize>, n: usize| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map(|s| short(s, n)).unwrap_or_default(),
            _ => String::new(),
        };
        // the first row at the top
        let row_names: Vec<String> = self.rows.iter().rev().cloned().collect();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc.max(1))
            .y_labels(nr.max(1))
            .x_label_formatter(&|v| name(&self.columns, v, 13))
            .y_label_formatter(&|v| name(&row_names, v, 26))
            .x_label_style(font(11))
            .y_label_style(font(12))
            .x_desc("decision")
            .y_desc("truth")
            .draw()
            .map_err(err)?;
        for (r, counts) in self.counts.iter().enumerate() {
            let total = counts.iter().sum::<usize>().max(1) as f64;
            let y = nr - 1 - r;
            for (c, &n) in counts.iter().enumerate() {
                let share = n as f64 / total;
                let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
                let fill = RGBColor(shade, shade, 255);
                let cell = [
                    (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                ];
                chart
                    .draw_series([Rectangle::new(cell, fill.filled())])
                    .map_err(err)?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                chart
                    .draw_series([Text::new(
                        n.to_string(),
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                        font(13)
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )])
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_shares_and_keep_the_ends() {
        let h = histogram(&[0.0, 0.5, 1.0, 1.0]);
        assert_eq!(h.len(), BINS);
        assert_eq!((h[0], h[10], h[BINS - 1]), (0.25, 0.25, 0.5));
        assert_eq!(grid_size(1), (320, 320));
        assert_eq!(grid_size(5), (1280, 600));
    }
}
