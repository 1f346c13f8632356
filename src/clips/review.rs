//! `burstwatch review DIR`: one static HTML page (no server, no script) listing each
//! camera's alerts in a clips folder, newest first, with snapshot, clip (an HTML5
//! `<video>`), score, outcome and time: what a lab member opens on Monday morning. It is
//! made from the records (`<stem>.json`) beside the files, and links only files that exist.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::AlertRecord;
use crate::{Error, Result};

/// One alert as the page shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: AlertRecord,
    /// The snapshot and clip that exist, relative to the page.
    pub snapshot: Option<String>,
    pub clip: Option<String>,
}

/// What the page lists, camera by camera (sorted by name), alerts newest first.
#[derive(Debug, Default)]
pub struct Review {
    pub cameras: Vec<(String, Vec<Listed>)>,
}

impl Review {
    pub fn alerts(&self) -> usize {
        self.cameras.iter().map(|(_, a)| a.len()).sum()
    }
}

/// Reads the records of `dir` (`dir/<camera>/*.json`), with links relative to `page_dir`.
pub fn read(dir: &Path, page_dir: &Path) -> Result<Review> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut review = Review::default();
    for camera in entries.flatten() {
        if !camera.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let mut listed = Vec::new();
        for f in std::fs::read_dir(camera.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = f.path();
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(record) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<AlertRecord>(&b).ok())
            else {
                tracing::warn!("{}: not an alert record; left out", path.display());
                continue;
            };
            let link = |file: &Option<String>| {
                let file = camera.path().join(file.as_ref()?);
                file.is_file().then(|| relative(&file, page_dir))
            };
            listed.push(Listed {
                snapshot: link(&record.snapshot),
                clip: link(&record.clip),
                record,
            });
        }
        listed.sort_by(|a, b| {
            (&b.record.wall_time, b.record.frame).cmp(&(&a.record.wall_time, a.record.frame))
        });
        review
            .cameras
            .push((camera.file_name().to_string_lossy().into_owned(), listed));
    }
    review.cameras.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(review)
}

/// `file` as the page links it: relative when it lies under the page's folder.
fn relative(file: &Path, page_dir: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let (file, base) = (abs(file), abs(page_dir));
    let path: PathBuf = file
        .strip_prefix(&base)
        .map_or(file.clone(), Path::to_owned);
    path.to_string_lossy()
        .split('/')
        .map(|part| percent_encoding::utf8_percent_encode(part, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Characters escaped in a link's path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page.
pub fn html(review: &Review, title: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 2em; }}\n\
         th, td {{ border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }}\n\
         .burst {{ color: #b00; font-weight: bold; }} .calm {{ color: #555; }}\n\
         img, video {{ width: 320px; }}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    let followed: usize = review
        .cameras
        .iter()
        .flat_map(|(_, a)| a)
        .filter(|a| a.record.burst == Some(true))
        .count();
    let _ = writeln!(
        h,
        "<p>{} alerts on {} cameras; {followed} followed by a burst.</p>",
        review.alerts(),
        review.cameras.len()
    );
    for (camera, alerts) in &review.cameras {
        let _ = writeln!(
            h,
            "<h2 id=\"{c}\">{c}</h2>\n<table class=\"alerts\" data-camera=\"{c}\">\n\
             <tr><th>time (UTC)</th><th>frame</th><th>score</th><th>outcome</th><th>snapshot</th><th>clip</th></tr>",
            c = escape(camera)
        );
        for a in alerts {
            let r = &a.record;
            let outcome = match r.burst {
                Some(true) => "<span class=\"burst\">burst followed</span>",
                Some(false) => "<span class=\"calm\">no burst</span>",
                None => "unknown",
            };
            let snapshot = a.snapshot.as_ref().map_or("none".to_string(), |s| {
                format!(
                    "<a href=\"{s}\"><img src=\"{s}\" alt=\"snapshot of {}\" loading=\"lazy\"></a>",
                    escape(&r.id)
                )
            });
            let clip = a.clip.as_ref().map_or(
                if r.clip.is_some() { "not written" } else { "dropped" }.to_string(),
                |c| format!("<video controls preload=\"metadata\" src=\"{c}\"></video><br><a href=\"{c}\">download</a>"),
            );
            let _ = writeln!(
                h,
                "<tr class=\"alert\" id=\"{id}\"><td>{time}</td><td>{frame}</td><td>{score:.3} (threshold {thr:.3})</td>\
                 <td>{outcome}</td><td>{snapshot}</td><td>{clip}</td></tr>",
                id = escape(&r.id),
                time = escape(&r.wall_time.replace('T', " ")),
                frame = r.frame,
                score = r.score,
                thr = r.threshold,
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Writes the page for `dir` to `out` (at once: a reader never sees half of it); returns
/// what it lists.
pub fn write(dir: &Path, out: &Path) -> Result<Review> {
    let page_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let review = read(dir, page_dir)?;
    let title = format!("burstwatch alerts in {}", dir.display());
    super::store::write_atomic(out, html(&review, &title).as_bytes()).map_err(|e| {
        Error::bad_input(
            out,
            format!("cannot write the page: {e}; expected a writable file"),
        )
    })?;
    Ok(review)
}
