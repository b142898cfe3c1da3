//! The 2-D map of embeddings (`embed --plot`): PCA or t-SNE (the bhtsne crate) of one vector
//! per file, each point coloured by its label.
//!
//! PCA is the two leading principal components (power iteration on the centred data, signs
//! fixed so the same data gives the same picture). t-SNE starts from that PCA (scaled to a
//! standard deviation of 1e-4, as scikit-learn's `init="pca"`) rather than from random points,
//! so a map is the same from run to run up to the order of floating-point sums.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{colour, err, font, short, Figure, GREY};

/// How the vectors are brought down to two dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The two leading principal components.
    Pca,
    /// t-SNE with this perplexity (Barnes-Hut, θ = 0.5, 1,000 iterations).
    Tsne {
        /// The effective number of neighbours each point keeps (5 to 50 is usual).
        perplexity: f64,
    },
}

impl Method {
    /// t-SNE's usual perplexity, 30, or the largest the number of points allows
    /// (three neighbours per unit of perplexity must exist).
    pub fn default_tsne(points: usize) -> Self {
        let most = (points.saturating_sub(1) / 3) as f64;
        Self::Tsne {
            perplexity: most.min(30.0),
        }
    }

    /// Its name in titles.
    pub fn describe(&self) -> String {
        match self {
            Self::Pca => "PCA".to_owned(),
            Self::Tsne { perplexity } => format!("t-SNE, perplexity {perplexity}"),
        }
    }
}

/// What colours a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// One label: the index into [`Map::classes`].
    Label(usize),
    /// Several labels: left out of the colouring (grey), counted in the legend.
    Several,
    /// No label known for the file: grey.
    Unknown,
}

/// A map ready to draw.
#[derive(Debug, Clone)]
pub struct Map {
    /// Title line.
    pub title: String,
    /// One 2-D point per file.
    pub points: Vec<[f64; 2]>,
    /// Each point's class.
    pub class: Vec<Class>,
    /// The names of the `Class::Label` indexes.
    pub classes: Vec<String>,
}

/// Brings `rows` (all of one length) down to two dimensions; `progress` is told each t-SNE
/// iteration (of 1,000).
pub fn reduce(
    rows: &[Vec<f32>],
    method: Method,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<Vec<[f64; 2]>> {
    if rows.len() < 2 {
        anyhow::bail!("a map needs at least 2 files (got {})", rows.len());
    }
    let pca = pca2(rows);
    let Method::Tsne { perplexity } = method else {
        return Ok(pca);
    };
    let n = rows.len();
    if !(perplexity.is_finite() && perplexity > 0.0) {
        anyhow::bail!("perplexity {perplexity}: must be a positive number");
    }
    if 3.0 * perplexity.floor() > (n - 1) as f64 || perplexity < 1.0 {
        anyhow::bail!(
            "perplexity {perplexity} needs at least {} files (t-SNE keeps 3 × perplexity \
             neighbours of each); with {n} files use a perplexity of at most {}, or --map pca",
            3.0 * perplexity.floor().max(1.0) + 1.0,
            (n - 1) / 3
        );
    }
    let sd = {
        let m = pca.iter().map(|p| p[0]).sum::<f64>() / n as f64;
        (pca.iter().map(|p| (p[0] - m).powi(2)).sum::<f64>() / n as f64).sqrt()
    };
    let scale = if sd > 0.0 { 1e-4 / sd } else { 0.0 };
    let init: Vec<f32> = pca
        .iter()
        .flat_map(|p| [(p[0] * scale) as f32, (p[1] * scale) as f32])
        .collect();
    let data: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    let mut tsne: bhtsne::tSNE<f32, &[f32], 2> = bhtsne::tSNE::new(&data);
    tsne.perplexity(perplexity as f32)
        .initial_embedding(init)
        .epoch_callback(|epoch, _| progress(epoch + 1))
        .barnes_hut(0.5, |a, b| {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt()
        });
    let flat = tsne.embedding();
    let out: Vec<[f64; 2]> = flat
        .chunks_exact(2)
        .map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect();
    if out.iter().flatten().any(|v| !v.is_finite()) {
        anyhow::bail!("t-SNE diverged (a coordinate is not finite); try --map pca");
    }
    Ok(out)
}

/// The two leading principal components of `rows`: the centred data projected on the top
/// two eigenvectors of its covariance, found by power iteration (each vector's largest
/// component made positive).
pub fn pca2(rows: &[Vec<f32>]) -> Vec<[f64; 2]> {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0.0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += f64::from(v) / n as f64;
        }
    }
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&v, m)| f64::from(v) - m)
                .collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    // C v = Xᵀ (X v) / n, never forming the d × d matrix
    let cov = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; d];
        for row in &x {
            let s = dot(row, v);
            for (o, r) in out.iter_mut().zip(row) {
                *o += s * r;
            }
        }
        out
    };
    let mut components: Vec<Vec<f64>> = Vec::new();
    for k in 0..2 {
        // a fixed start that is not orthogonal to any usual direction
        let mut v: Vec<f64> = (0..d)
            .map(|i| 1.0 + ((i * 7 + k * 3) % 11) as f64 / 10.0)
            .collect();
        for _ in 0..500 {
            let mut w = cov(&v);
            for c in &components {
                let p = dot(&w, c);
                w.iter_mut().zip(c).for_each(|(wi, ci)| *wi -= p * ci);
            }
            let norm = dot(&w, &w).sqrt();
            if norm <= f64::MIN_POSITIVE {
                v = vec![0.0; d];
                break;
            }
            w.iter_mut().for_each(|wi| *wi /= norm);
            let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if change < 1e-12 {
                break;
            }
        }
        let largest = v
            .iter()
            .copied()
            .fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
        if largest < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        components.push(v);
    }
    x.iter()
        .map(|r| [dot(r, &components[0]), dot(r, &components[1])])
        .collect()
}

impl Map {
    /// How many points are of each kind: (coloured, several labels, unknown).
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: &dyn Fn(&Class) -> bool| self.class.iter().filter(|c| f(c)).count();
        (
            count(&|c| matches!(c, Class::Label(_))),
            count(&|c| *c == Class::Several),
            count(&|c| *c == Class::Unknown),
        )
    }
}

impl Figure for Map {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let range = |i: usize| {
            let (lo, hi) = self
                .points
                .iter()
                .map(|p| p[i])
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            let pad = ((hi - lo) * 0.05).max(1e-9);
            (lo - pad)..(hi + pad)
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(range(0), range(1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        let (_, several, unknown) = self.counts();
        let grey = |c: Class, what: String| -> Option<(Class, String)> {
            self.class.contains(&c).then_some((c, what))
        };
        let groups: Vec<(Class, String)> = [
            grey(Class::Unknown, format!("not in the labels ({unknown})")),
            grey(Class::Several, format!("several labels ({several})")),
        ]
        .into_iter()
        .flatten()
        .chain(self.classes.iter().enumerate().map(|(i, name)| {
            let n = self.class.iter().filter(|&&c| c == Class::Label(i)).count();
            (Class::Label(i), format!("{} ({n})", short(name, 28)))
        }))
        .collect();
        for (class, name) in groups {
            let style = match class {
                Class::Label(i) => colour(i).filled(),
                _ => GREY.filled(),
            };
            let points = self
                .points
                .iter()
                .zip(&self.class)
                .filter(|(_, &c)| c == class)
                .map(|(p, _)| Circle::new((p[0], p[1]), 4, style));
            chart
                .draw_series(points)
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x, y), 4, style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(font(13))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_direction_of_spread() {
        // points along (1, 2, 0) with a little spread along (0, 0, 1), uncorrelated with it
        // (signs + - - + in every four points)
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                let t = i as f32 - 10.0;
                vec![
                    t,
                    2.0 * t,
                    if i % 4 == 0 || i % 4 == 3 { 0.1 } else { -0.1 },
                ]
            })
            .collect();
        let p = pca2(&rows);
        let norm = 5f64.sqrt();
        for (i, q) in p.iter().enumerate() {
            let t = i as f64 - 10.0 + 0.5; // centred
            assert!((q[0] - t * norm).abs() < 1e-4, "{q:?} at {i}");
            assert!((q[1].abs() - 0.1).abs() < 1e-4, "{q:?} at {i}");
        }
    }

    #[test]
    fn tsne_separates_two_clusters_and_refuses_a_large_perplexity() {
        // two clusters 10 apart of 20 distinct points each (a fixed pseudo-random spread of
        // ±0.5 per dimension: no two points coincide, so no point's neighbours are ties)
        let mut state = 0x2545_f491_u32;
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let c = if i < 20 { 0.0 } else { 10.0 };
                (0..8)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        c + (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                    })
                    .collect()
            })
            .collect();
        let mut last = 0;
        let p =
            reduce(&rows, Method::Tsne { perplexity: 5.0 }, &mut |e| last = e).expect("t-SNE runs");
        assert_eq!(last, 1000);
        let centre = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            let s = p[r]
                .iter()
                .fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
            [s[0] / n, s[1] / n]
        };
        let (a, b) = (centre(0..20), centre(20..40));
        let d = |q: &[f64; 2], c: [f64; 2]| ((q[0] - c[0]).powi(2) + (q[1] - c[1]).powi(2)).sqrt();
        // every point lies nearer the centre of its own cluster than the other's
        for (i, q) in p.iter().enumerate() {
            let (own, other) = if i < 20 { (a, b) } else { (b, a) };
            assert!(
                d(q, own) < d(q, other),
                "point {i} {q:?}: centres {a:?} {b:?}"
            );
        }
        let e = reduce(&rows, Method::Tsne { perplexity: 30.0 }, &mut |_| {})
            .expect_err("40 points cannot keep 90 neighbours");
        assert!(e.to_string().contains("at most 13"), "{e}");
        assert_eq!(Method::default_tsne(40), Method::Tsne { perplexity: 13.0 });
        assert!(reduce(&rows[..1], Method::Pca, &mut |_| {}).is_err());
    }
}
