//! Writes a float32 `.npy` file row by row, its shape written when the last row is in.

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
}
