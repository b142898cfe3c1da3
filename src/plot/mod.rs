//! Charts as PNG or SVG files through plotters: the font built into the binary, the choice of
//! backend by file name, and the colours every chart shares.
//!
//! A chart is a [`Figure`]: it draws itself on any plotters backend, and [`save`] picks the
//! backend from the path's extension and writes the file under a temporary name first, so a
//! failed drawing never leaves half a picture in place.

pub mod eval;
pub mod map;
pub mod site;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

/// DejaVu Sans (its licence in assets/fonts/), so text renders the same on every machine
/// without a font installed.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name charts ask for.
pub const FAMILY: &str = "sans-serif";

/// Registers the built-in font with plotters once.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (a test draws text with it); were they not, text would be
        // missing from the charts and plotters would report the error at the first label.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Something drawn on a plotters drawing area of any backend.
pub trait Figure {
    /// Draws the whole picture on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// The picture formats, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.png`.
    Png,
    /// `.svg`.
    Svg,
}

impl Format {
    /// The format a path names, or a message saying which are known.
    pub fn of(path: &Path) -> anyhow::Result<Self> {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => anyhow::bail!("{}: a picture must be named .png or .svg", path.display()),
        }
    }
}

/// Draws `figure` at `size` pixels into `path` (PNG or SVG by its extension).
pub fn save(figure: &impl Figure, path: &Path, size: (u32, u32)) -> anyhow::Result<()> {
    let format = Format::of(path)?;
    register_font();
    let tmp = partial(path);
    let drawn = match format {
        Format::Png => {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            figure.draw(&root).and_then(|()| present(&root))
        }
        Format::Svg => {
            let root = SVGBackend::new(&tmp, size).into_drawing_area();
            figure.draw(&root).and_then(|()| present(&root))
        }
    };
    match drawn {
        Ok(()) => {
            std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("{}: not drawn", path.display())))
        }
    }
}

fn present<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    root.present().map_err(|e| anyhow::anyhow!("{e}"))
}

/// `chart.png` → `chart.partial.png`: the backends choose the encoder by the extension.
fn partial(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.partial.{ext}"))
}

/// A plotters error (any backend) as an anyhow error.
pub fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The colour of the `i`-th series: nine well-separated colours (matplotlib's "tab10", which
/// readers of the AST and BEATs papers know, less its grey: grey marks what is not coloured),
/// then plotters' larger palette.
pub fn colour(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 9] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
    ];
    match TAB10.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let c = Palette99::pick(i - TAB10.len()).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

/// Grey, for what is drawn but not coloured.
pub const GREY: RGBColor = RGBColor(170, 170, 170);

/// A label cut to `n` characters (an ellipsis marks the cut).
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(['…']).collect()
    }
}

/// The legend most charts share: upper right, on a light box.
pub fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(font(12))
        .draw()
        .map_err(err)
}

/// The font at `size` points.
pub fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.PNG")).ok(), Some(Format::Png));
        assert_eq!(Format::of(Path::new("b.svg")).ok(), Some(Format::Svg));
        let e = Format::of(Path::new("b.jpg")).expect_err("jpg refused");
        assert!(e.to_string().contains(".png or .svg"), "{e}");
        assert_eq!(
            partial(Path::new("d/map.png")),
            Path::new("d/map.partial.png")
        );
    }

    #[test]
    fn colours_are_distinct() {
        let c: Vec<RGBColor> = (0..40).map(colour).collect();
        for (i, a) in c.iter().enumerate().take(9) {
            assert!(c[i + 1..9].iter().all(|b| b != a));
        }
    }
}
