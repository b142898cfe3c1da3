//! Keeps a clip folder inside its caps: count, total size and age, the oldest clips removed
//! first. Run at start and after every clip written.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The caps of a clip folder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    /// Clips at most.
    pub count: u64,
    /// Bytes at most.
    pub bytes: u64,
    /// Age at most.
    pub age: Duration,
}

/// Removes clips (`*.wav`, not `*.partial`) until `dir` is within `caps`; returns how many
/// were removed. Files it cannot read or remove are left and logged.
pub fn enforce(dir: &Path, caps: Caps) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut clips: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().unwrap_or(now), m.len(), e.path()))
        })
        .collect();
    // newest first; ties by name so the order is stable
    clips.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.2.cmp(&a.2)));
    let (mut kept, mut bytes, mut removed) = (0u64, 0u64, 0usize);
    for (modified, len, path) in clips {
        let old = now.duration_since(modified).unwrap_or_default() > caps.age;
        if old || kept + 1 > caps.count || bytes + len > caps.bytes {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(clip = %path.display(), error = %e, "clip not removed"),
            }
        } else {
            kept += 1;
            bytes += len;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_until_every_cap_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = SystemTime::now() - Duration::from_secs(1000);
        for i in 0..200u64 {
            let p = dir.path().join(format!("{i:03}.wav"));
            std::fs::write(&p, vec![0u8; 100]).expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(base + Duration::from_secs(i))
                .expect("mtime");
        }
        std::fs::write(dir.path().join("x.partial"), b"keep").expect("write");
        let caps = Caps {
            count: 50,
            bytes: 1 << 20,
            age: Duration::from_secs(3600),
        };
        assert_eq!(enforce(dir.path(), caps), 150);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 51);
        assert_eq!(left[0], "150.wav");
        // size: 30 clips of 100 bytes
        let caps = Caps {
            bytes: 3000,
            ..caps
        };
        assert_eq!(enforce(dir.path(), caps), 20);
        // age: clip i was made 1000 - i s ago; 170..199 are left, 170..180 are past 820 s
        let caps = Caps {
            age: Duration::from_secs(820),
            ..caps
        };
        let removed = enforce(dir.path(), caps);
        assert!((10..=11).contains(&removed), "{removed}");
    }
}
