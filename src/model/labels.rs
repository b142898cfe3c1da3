//! Labels CSV in AudioSet's `class_labels_indices.csv` form: `index,mid,display_name`.

use std::path::Path;

use super::error::ModelError;
use crate::format::slugify;

/// One model output.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Display name, e.g. "Smoke detector, smoke alarm".
    pub name: String,
    /// The AudioSet machine id, e.g. "/m/01y3hg".
    pub mid: String,
    /// Lower-case ASCII `[a-z0-9_]` form of the name, for topics and keys.
    pub slug: String,
    /// The model's own `on` score for this label (the manifest's `[thresholds]`), if any.
    pub threshold: Option<f32>,
}

/// Reads the labels; their order must follow the `index` column 0, 1, 2, ...
pub fn load(path: &Path) -> Result<Vec<Label>, ModelError> {
    let err = |msg: String| ModelError::Labels {
        path: path.to_owned(),
        msg,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
    let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                err(format!(
                    "missing column {name:?} (need index,mid,display_name)"
                ))
            })
    };
    let (i_idx, i_mid, i_name) = (col("index")?, col("mid")?, col("display_name")?);
    let mut labels = Vec::new();
    for (row, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let field = |i: usize| rec.get(i).unwrap_or("").trim().to_owned();
        if field(i_idx) != row.to_string() {
            return Err(err(format!(
                "row {}: index {:?}, expected {row}",
                row + 2,
                field(i_idx)
            )));
        }
        let name = field(i_name);
        if name.is_empty() {
            return Err(err(format!("row {}: empty display_name", row + 2)));
        }
        labels.push(Label {
            slug: slugify(&name),
            mid: field(i_mid),
            name,
            threshold: None,
        });
    }
    if labels.is_empty() {
        return Err(err("no labels".into()));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_order_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, "index,mid,display_name\n1,/m/a,\"A\"\n").expect("write");
        let e = load(&p).expect_err("must fail").to_string();
        assert!(e.contains("expected 0"), "{e}");
    }
}
