//! The clips folder: `DIR/<camera>/<YYYYmmdd-HHMMSS>-<frame>.{mp4,png,json}`, files
//! written under a hidden temporary name and renamed into place, and the folder kept under
//! its size (`max_mb`) by removing the oldest alerts' files, whichever camera's.

use std::path::{Path, PathBuf};

/// The extensions of an alert's files: its clip, its snapshot, its record.
pub const EXTENSIONS: [&str; 3] = ["mp4", "png", "json"];

/// A camera's folder name: its name, with anything but letters, digits, `-`, `_` and `.`
/// made `_` (a one-off camera is named by its URL).
pub fn folder_name(camera: &str) -> String {
    let name: String = camera
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// The stem of an alert's files: `<YYYYmmdd-HHMMSS>-<frame>` from its wall time (RFC 3339
/// UTC, as events carry it).
pub fn stem(wall_time: &str, frame: u64) -> String {
    let digits: String = wall_time
        .chars()
        .take_while(|c| *c != '.' && *c != 'Z')
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = digits.split_at(digits.len().min(8));
    format!("{date}-{time}-{frame}")
}

/// Where a file is written before it is complete: hidden, beside it, never a name a
/// reader looks for.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.part"))
}

/// Writes `bytes` to `path` at once: a temporary file, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(path);
    let result = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// One alert's files in the folder.
#[derive(Debug)]
struct Entry {
    /// `<camera>/<stem>`, which sorts by time within a second's resolution.
    key: (String, String),
    files: Vec<PathBuf>,
    bytes: u64,
}

/// Removes the oldest alerts' files until the folder holds at most `max_bytes`; returns
/// how many alerts' files went. Temporary files are left alone (a writer owns them), and a
/// file another camera removed first is not an error.
pub fn prune(dir: &Path, max_bytes: u64) -> std::io::Result<usize> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut total = 0u64;
    for camera in std::fs::read_dir(dir)? {
        let camera = camera?;
        if !camera.file_type()?.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(camera.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            let name = f.file_name().to_string_lossy().into_owned();
            let ext_ok = path
                .extension()
                .is_some_and(|e| EXTENSIONS.iter().any(|x| e == *x));
            if name.starts_with('.') || !ext_ok {
                continue;
            }
            let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
            total += bytes;
            let stem = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let key = (camera.file_name().to_string_lossy().into_owned(), stem);
            match entries.iter_mut().find(|e| e.key == key) {
                Some(e) => {
                    e.files.push(path);
                    e.bytes += bytes;
                }
                None => entries.push(Entry {
                    key,
                    files: vec![path],
                    bytes,
                }),
            }
        }
    }
    if total <= max_bytes {
        return Ok(0);
    }
    // Oldest first: by the time in the name, then the frame.
    entries.sort_by(|a, b| {
        order(&a.key.1)
            .cmp(&order(&b.key.1))
            .then(a.key.cmp(&b.key))
    });
    let mut removed = 0;
    for e in entries {
        if total <= max_bytes {
            break;
        }
        for f in &e.files {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        total = total.saturating_sub(e.bytes);
        removed += 1;
    }
    Ok(removed)
}

/// A stem's time and frame, for ordering (`20261201-141516-300` -> ("20261201141516", 300)).
fn order(stem: &str) -> (String, u64) {
    let mut parts = stem.rsplitn(2, '-');
    let frame = parts.next().and_then(|f| f.parse().ok()).unwrap_or(0);
    let time = parts.next().unwrap_or("").replace('-', "");
    (time, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_wall_time_and_the_frame() {
        assert_eq!(
            stem("2026-12-01T14:15:16.123456Z", 300),
            "20261201-141516-300"
        );
        assert_eq!(
            folder_name("rtsp://cam.lab:8554/s1"),
            "rtsp___cam.lab_8554_s1"
        );
        assert_eq!(folder_name(".."), "_..");
        assert_eq!(
            temp_path(Path::new("/c/a/x.mp4")),
            PathBuf::from("/c/a/.x.mp4.part")
        );
    }

    #[test]
    fn the_oldest_alerts_go_first_whatever_their_camera() {
        let dir = tempfile::tempdir().unwrap();
        for (cam, stem) in [
            ("a", "20261201-100000-5"),
            ("b", "20261201-090000-9"),
            ("a", "20261201-110000-1"),
        ] {
            std::fs::create_dir_all(dir.path().join(cam)).unwrap();
            for ext in EXTENSIONS {
                std::fs::write(
                    dir.path().join(cam).join(format!("{stem}.{ext}")),
                    [0u8; 100],
                )
                .unwrap();
            }
        }
        std::fs::write(
            dir.path().join("a/.20261201-120000-1.mp4.part"),
            [0u8; 1000],
        )
        .unwrap();
        assert_eq!(prune(dir.path(), 10_000).unwrap(), 0);
        // 900 bytes of alerts: keeping 400 takes the two oldest away.
        assert_eq!(prune(dir.path(), 400).unwrap(), 2);
        assert!(!dir.path().join("b/20261201-090000-9.mp4").exists());
        assert!(!dir.path().join("a/20261201-100000-5.png").exists());
        assert!(dir.path().join("a/20261201-110000-1.json").exists());
        assert!(dir.path().join("a/.20261201-120000-1.mp4.part").exists());
    }
}
