//! Writes a float32 `.npy` file row by row, its shape written when the last row is in, and
//! reads one back.

use std::io::{Seek, SeekFrom, Write};

/// The header's fixed size: room for any shape of up to three dimensions.
const HEADER: usize = 256;

/// A `.npy` file being written: rows of `row` values each, appended in order.
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    inner: Vec<usize>,
    rows: usize,
    buf: Vec<u8>,
}

impl<W: Write + Seek> NpyWriter<W> {
    /// Starts an array whose rows have the shape `inner` (e.g. `[frames, bins]` for rows that
    /// are windows); the header is reserved now and written by [`NpyWriter::finish`].
    pub fn new(mut out: W, inner: &[usize]) -> std::io::Result<Self> {
        out.write_all(&[b' '; HEADER])?;
        Ok(Self {
            out,
            inner: inner.to_vec(),
            rows: 0,
            buf: Vec::new(),
        })
    }

    /// Appends whole rows (a multiple of the row size, little-endian float32).
    pub fn rows(&mut self, values: &[f32]) -> std::io::Result<()> {
        let row: usize = self.inner.iter().product();
        if row == 0 || !values.len().is_multiple_of(row) {
            return Err(std::io::Error::other(format!(
                "{} values are not whole rows of {row}",
                values.len()
            )));
        }
        self.buf.clear();
        self.buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        self.out.write_all(&self.buf)?;
        self.rows += values.len() / row;
        Ok(())
    }

    /// Writes the header with the final shape and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        let dims: Vec<String> = std::iter::once(self.rows)
            .chain(self.inner.iter().copied())
            .map(|d| d.to_string())
            .collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(b"\x93NUMPY\x01\x00");
        header.extend_from_slice(&((HEADER - 10) as u16).to_le_bytes());
        header.extend_from_slice(dict.as_bytes());
        if header.len() >= HEADER {
            return Err(std::io::Error::other("npy shape too long for its header"));
        }
        header.resize(HEADER - 1, b' ');
        header.push(b'\n');
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.flush()
    }
}

/// Reads a little-endian float32, C-order `.npy` file (format 1 or 2): its shape and values.
pub fn read_f32(path: &std::path::Path) -> std::io::Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path)?;
    let bad = |why: &str| std::io::Error::other(format!("{}: {why}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown .npy version")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("bad header"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("not little-endian float32 in C order"));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .trim()
        .trim_start_matches('(')
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data = &bytes[start + len..];
    let n: usize = shape.iter().product();
    if data.len() != n * 4 {
        return Err(bad("the data does not fit the shape"));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_rows_are_numpys_format() {
        let mut file = std::io::Cursor::new(Vec::new());
        let mut w = NpyWriter::new(&mut file, &[2, 3]).expect("new");
        w.rows(&[0.0; 6]).expect("rows");
        w.rows(&[1.0; 12]).expect("rows");
        assert!(w.rows(&[1.0; 5]).is_err());
        w.finish().expect("finish");
        let bytes = file.into_inner();
        assert_eq!(bytes.len(), HEADER + 18 * 4);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let text = std::str::from_utf8(&bytes[10..HEADER]).expect("ascii");
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 3), }"));
        assert!(text.ends_with('\n'));
        assert_eq!(HEADER % 64, 0);
    }

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.npy");
        let mut w = NpyWriter::new(std::fs::File::create(&p).expect("create"), &[2]).expect("new");
        w.rows(&[1.0, -2.5, 3.0, 4.0]).expect("rows");
        w.finish().expect("finish");
        let (shape, v) = read_f32(&p).expect("reads");
        assert_eq!(shape, [2, 2]);
        assert_eq!(v, [1.0, -2.5, 3.0, 4.0]);
        std::fs::write(&p, b"nonsense").expect("write");
        assert!(read_f32(&p).is_err());
    }
}
