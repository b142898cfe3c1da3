//! The report folder of `eval --out`: the PNG charts of one aggregation and an HTML page with
//! every table (the four aggregations side by side) and those charts; no external assets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::metrics;
use super::report::Figures;
use crate::plot::eval::{grid_size, Bars, Curve, CurveKind, Curves, Heat, Histograms};

/// Per-label charts drawn at most (the labels with the most clips first); the tables keep
/// every label.
pub const MOST_PANELS: usize = 48;

/// What the page says about the run.
pub struct Page<'a> {
    /// The model's name.
    pub model: &'a str,
    /// The data set (CSV or folder).
    pub data: &'a Path,
    /// Clips and windows scored.
    pub clips: usize,
    /// See `clips`.
    pub windows: usize,
    /// Every aggregation's figures.
    pub all: &'a [Figures],
    /// The aggregation the charts show.
    pub chosen: &'a Figures,
    /// The label names of the model, indexed as `truth` and `scores`.
    pub names: &'a [String],
    /// Per clip, per model label: the truth.
    pub truth: &'a [Vec<bool>],
    /// Per clip, per model label: the score of `chosen`'s aggregation.
    pub scores: &'a [Vec<f32>],
}

/// Draws the charts and writes `index.html` into `dir`; returns the files written.
pub fn write(dir: &Path, page: &Page) -> anyhow::Result<Vec<PathBuf>> {
    let how = page.chosen.aggregate;
    let mut shown: Vec<&super::report::LabelFigures> = page.chosen.labels.iter().collect();
    shown.sort_by_key(|l| std::cmp::Reverse(l.positives));
    shown.truncate(MOST_PANELS);
    let column = |label: &str| -> (Vec<bool>, Vec<f64>) {
        let l = page.names.iter().position(|n| n == label).unwrap_or(0);
        page.truth
            .iter()
            .zip(page.scores)
            .map(|(t, s)| (t[l], f64::from(s[l])))
            .unzip()
    };
    let curves = |kind: CurveKind| Curves {
        title: format!(
            "{} curves per label ({how} of each file's windows), model {}",
            match kind {
                CurveKind::Roc => "ROC",
                CurveKind::Pr => "Precision-recall",
            },
            page.model
        ),
        kind,
        curves: shown
            .iter()
            .map(|l| {
                let (t, s) = column(&l.label);
                let (points, note) = match kind {
                    CurveKind::Roc => (
                        metrics::roc_curve(&t, &s).map(|c| c.fpr.into_iter().zip(c.tpr).collect()),
                        l.roc_auc
                            .map_or("one class only".to_owned(), |v| format!("AUC {v:.3}")),
                    ),
                    CurveKind::Pr => (
                        metrics::pr_curve(&t, &s)
                            .map(|c| c.recall.into_iter().zip(c.precision).collect()),
                        l.ap.map_or("no positives".to_owned(), |v| format!("AP {v:.3}")),
                    ),
                };
                Curve {
                    label: l.label.clone(),
                    points,
                    note,
                }
            })
            .collect(),
    };
    let mut written = Vec::new();
    let mut save = |name: &str, fig: &dyn Fn(&Path) -> anyhow::Result<()>| {
        let path = dir.join(name);
        fig(&path)?;
        written.push(path);
        anyhow::Ok(())
    };
    let grid = grid_size(shown.len());
    save("roc.png", &|p| {
        crate::plot::save(&curves(CurveKind::Roc), p, grid)
    })?;
    save("pr.png", &|p| {
        crate::plot::save(&curves(CurveKind::Pr), p, grid)
    })?;
    let bars = Bars {
        title: format!("Per label ({how} of each file's windows)"),
        rows: page
            .chosen
            .labels
            .iter()
            .map(|l| (l.label.clone(), l.ap, l.f1, l.best.map(|b| b.f1)))
            .collect(),
    };
    save("labels.png", &|p| crate::plot::save(&bars, p, bars.size()))?;
    let hist = Histograms {
        title: format!("Scores of clips with and without each label ({how}); red: the threshold"),
        panels: shown
            .iter()
            .map(|l| {
                let (t, s) = column(&l.label);
                let side = |want: bool| -> Vec<f64> {
                    t.iter()
                        .zip(&s)
                        .filter(|(&y, _)| y == want)
                        .map(|(_, &v)| v)
                        .collect()
                };
                (l.label.clone(), side(true), side(false), l.threshold)
            })
            .collect(),
    };
    save("scores.png", &|p| {
        crate::plot::save(&hist, p, grid_size(hist.panels.len()))
    })?;
    if let Some(c) = &page.chosen.confusion {
        let heat = Heat {
            title: format!("Confusion ({how}): rows truth, columns decision"),
            rows: c.rows.clone(),
            columns: c.columns.clone(),
            counts: c.counts.clone(),
        };
        save("confusion.png", &|p| {
            crate::plot::save(&heat, p, heat.size())
        })?;
    }
    let html = dir.join("index.html");
    let tmp = dir.join("index.html.partial");
    std::fs::write(&tmp, html_page(page, shown.len(), &written))
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &html).map_err(|e| anyhow::anyhow!("{}: {e}", html.display()))?;
    written.push(html);
    Ok(written)
}

/// Text made safe inside HTML elements and attributes.
pub fn escape(s: &str) -> String {
    s.chars().fold(String::with_capacity(s.len()), |mut o, c| {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
        o
    })
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

fn html_page(page: &Page, panels: usize, images: &[PathBuf]) -> String {
    let f = page.chosen;
    let mut h = String::new();
    let e = escape;
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Evaluation of {model}</title>\n<style>\
         body{{font-family:sans-serif;margin:1.5em;max-width:1400px}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}\
         img{{max-width:100%;border:1px solid #eee;margin:.5em 0}}\
         .undefined{{color:#999}}</style></head><body>\n\
         <h1>Evaluation of {model}</h1>\n<p>{clips} clips ({windows} windows) from \
         <code>{data}</code>. Per-label figures and charts: <b>{how}</b> of each file's \
         window scores. <i>n/a</i>: undefined (a label without positives has no AP; \
         one class only has no ROC-AUC); it is left out of every mean.</p>\n",
        model = e(page.model),
        clips = page.clips,
        windows = page.windows,
        data = e(&page.data.display().to_string()),
        how = f.aggregate,
    );
    h.push_str("<h2>The four aggregations</h2>\n<table><tr><th>aggregate</th><th>macro mAP</th><th>micro mAP</th><th>subset accuracy</th><th>Hamming loss</th></tr>\n");
    for a in page.all {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.4}</td></tr>",
            a.aggregate,
            num(a.macro_map),
            num(a.micro_map),
            a.subset_accuracy,
            a.hamming_loss
        );
    }
    h.push_str("</table>\n<h2>Per label</h2>\n<table><tr><th>label</th><th>clips</th><th>AP</th><th>ROC-AUC</th><th>PR-AUC</th><th>threshold</th><th>precision</th><th>recall</th><th>F1</th><th>best-F1 threshold</th><th>precision</th><th>recall</th><th>F1</th></tr>\n");
    for l in &f.labels {
        let b = l.best;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            e(&l.label),
            l.positives,
            num(l.ap),
            num(l.roc_auc),
            num(l.pr_auc),
            l.threshold,
            l.precision,
            l.recall,
            l.f1,
            num(b.map(|b| b.threshold)),
            num(b.map(|b| b.precision)),
            num(b.map(|b| b.recall)),
            num(b.map(|b| b.f1)),
        );
    }
    h.push_str("</table>\n");
    if let Some(c) = &f.confusion {
        h.push_str("<h2>Confusion</h2>\n<p>Rows: the clip's label (<i>none</i>: a background clip); columns: the label decided (the highest score at or above its threshold; <i>other</i>: a label of the model the data does not have; <i>none</i>: no label).</p>\n<table><tr><th></th>");
        for col in &c.columns {
            let _ = write!(h, "<th>{}</th>", e(col));
        }
        h.push_str("</tr>\n");
        for (row, counts) in c.rows.iter().zip(&c.counts) {
            let _ = write!(h, "<tr><td>{}</td>", e(row));
            for n in counts {
                let _ = write!(h, "<td>{n}</td>");
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Charts</h2>\n");
    if panels < f.labels.len() {
        let _ = writeln!(
            h,
            "<p>The per-label charts show the {panels} labels with the most clips of {}.</p>",
            f.labels.len()
        );
    }
    for img in images {
        let name = img
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let alt = match name.as_str() {
            "roc.png" => "ROC curves per label",
            "pr.png" => "Precision-recall curves per label",
            "labels.png" => "AP and F1 per label",
            "scores.png" => "Score histograms per label",
            "confusion.png" => "Confusion heat map",
            _ => "chart",
        };
        let _ = writeln!(
            h,
            "<figure><img src=\"{n}\" alt=\"{alt}\"><figcaption>{alt}</figcaption></figure>",
            n = e(&name)
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }
}
