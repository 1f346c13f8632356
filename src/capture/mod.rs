//! Capture: where frames come from (an RTSP camera, a recorded file, any GStreamer launch
//! line, the built-in simulated tank) and the ring that carries them to inference.
//! Every source delivers GRAY8 240x320 frames at 30 fps. Nothing here scores frames.

pub mod gst_source;
pub mod pipeline;
pub mod preprocess;
pub mod read;
pub mod ring;
pub mod sim_source;

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Frame geometry every source delivers (the study's processed frames).
pub const FRAME_WIDTH: usize = 320;
pub const FRAME_HEIGHT: usize = 240;
/// Frames per second every source delivers (the study's camera).
pub const FPS: u32 = 30;

/// What the user asked to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// An RTSP camera; the location carries no credentials (they are kept apart).
    Rtsp {
        location: String,
        user: Option<String>,
        password: Option<String>,
    },
    /// A recorded file, as a `file://` URI.
    File { path: PathBuf, uri: String },
    /// A GStreamer launch line ending in a video branch.
    Launch(String),
    /// The built-in simulated tank.
    Sim { seed: u64 },
}

impl SourceKind {
    /// Live sources never block on a full ring; files replayed as fast as possible do.
    pub fn is_live(&self) -> bool {
        matches!(self, SourceKind::Rtsp { .. } | SourceKind::Sim { .. })
    }
}

/// A source as given on the command line, parsed, with a name safe to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// The source without credentials: what logs and events show.
    pub name: String,
}

impl SourceSpec {
    /// Parses `rtsp://...`, `file://...`, `gst:<launch line>`, `sim[:SEED]` or a file path.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        if let Some(rest) = s.strip_prefix("sim") {
            let seed = match rest.strip_prefix(':') {
                Some(n) => n.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "--source {s}: seed {n:?} is not a number; expected sim or sim:SEED"
                    ))
                })?,
                None if rest.is_empty() => 1,
                None => return Self::file(s),
            };
            return Ok(SourceSpec {
                kind: SourceKind::Sim { seed },
                name: format!("sim:{seed}"),
            });
        }
        if let Some(launch) = s.strip_prefix("gst:") {
            if launch.trim().is_empty() {
                return Err(Error::Invalid(
                    "--source gst: needs a launch line, e.g. gst:videotestsrc".into(),
                ));
            }
            return Ok(SourceSpec {
                kind: SourceKind::Launch(launch.to_owned()),
                name: s.to_owned(),
            });
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("rtsp://")
            || lower.starts_with("rtsps://")
            || lower.starts_with("rtspt://")
        {
            return Self::rtsp(s);
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Self::file(&percent_decode(path));
        }
        if lower.contains("://") {
            return Err(Error::Invalid(format!(
                "--source {}: unsupported scheme; expected rtsp://, file://, gst:, sim or a file path",
                redact_url(s)
            )));
        }
        Self::file(s)
    }

    fn rtsp(s: &str) -> Result<SourceSpec> {
        let (scheme, rest) = s.split_once("://").unwrap_or(("rtsp", s));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(Error::Invalid(format!(
                "--source {}: no host; expected rtsp://[user:password@]host[:port]/path",
                redact_url(s)
            )));
        }
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((a, b)) => (Some(percent_decode(a)), Some(percent_decode(b))),
                None => (Some(percent_decode(u)), None),
            },
            None => (None, None),
        };
        let location = format!("{scheme}://{host}{path}");
        if location.contains('"') {
            return Err(Error::Invalid(
                "--source: an RTSP location may not contain '\"'".into(),
            ));
        }
        Ok(SourceSpec {
            name: location.clone(),
            kind: SourceKind::Rtsp {
                location,
                user,
                password,
            },
        })
    }

    fn file(p: &str) -> Result<SourceSpec> {
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            return Err(Error::bad_input(
                path,
                "is a directory; expected a video file",
            ));
        }
        std::fs::File::open(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let abs = std::fs::canonicalize(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(SourceSpec {
            name: p.to_owned(),
            kind: SourceKind::File {
                uri: file_uri(&abs),
                path: path.to_owned(),
            },
        })
    }
}

/// `file://` URI of an absolute path, percent-encoding what a URI may not hold.
fn file_uri(abs: &Path) -> String {
    let mut uri = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL with any `user:password@` removed, for messages.
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => s.to_owned(),
    }
}

/// A crop rectangle in source pixels, applied before scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl std::str::FromStr for Crop {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Crop, String> {
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("{s:?}: expected x,y,w,h in pixels"))?;
        match v.as_slice() {
            &[x, y, width, height] if width > 0 && height > 0 => Ok(Crop {
                x,
                y,
                width,
                height,
            }),
            _ => Err(format!("{s:?}: expected x,y,w,h with w, h > 0")),
        }
    }
}

/// How sources are captured (what the user asked; one run's state lives elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    pub crop: Option<Crop>,
    /// Files as fast as possible instead of at real speed.
    pub fast: bool,
    /// RTSP jitter-buffer latency.
    pub rtsp_latency_ms: u32,
    /// Frames the ring holds.
    pub ring_slots: usize,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            crop: None,
            fast: false,
            rtsp_latency_ms: 100,
            ring_slots: 32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_credentials_are_kept_apart() {
        let s = SourceSpec::parse("rtsp://user:se%40cret@127.0.0.1:8554/tank").unwrap();
        assert_eq!(s.name, "rtsp://127.0.0.1:8554/tank");
        assert_eq!(
            s.kind,
            SourceKind::Rtsp {
                location: "rtsp://127.0.0.1:8554/tank".into(),
                user: Some("user".into()),
                password: Some("se@cret".into()),
            }
        );
        assert_eq!(redact_url("rtsp://a:b@h/x"), "rtsp://h/x");
    }

    #[test]
    fn sim_and_launch() {
        assert_eq!(
            SourceSpec::parse("sim").unwrap().kind,
            SourceKind::Sim { seed: 1 }
        );
        assert_eq!(
            SourceSpec::parse("sim:42").unwrap().kind,
            SourceKind::Sim { seed: 42 }
        );
        assert!(SourceSpec::parse("sim:x").is_err());
        assert!(matches!(
            SourceSpec::parse("gst:videotestsrc").unwrap().kind,
            SourceKind::Launch(_)
        ));
        assert!(SourceSpec::parse("http://example.com/x").is_err());
    }

    #[test]
    fn crop_parses() {
        assert_eq!(
            "10,20,300,200".parse::<Crop>().unwrap(),
            Crop {
                x: 10,
                y: 20,
                width: 300,
                height: 200
            }
        );
        assert!("1,2,3".parse::<Crop>().is_err());
        assert!("1,2,0,4".parse::<Crop>().is_err());
    }

    #[test]
    fn file_uris_are_escaped() {
        assert_eq!(file_uri(Path::new("/a b/c#.mkv")), "file:///a%20b/c%23.mkv");
    }
}
