//! Capture: where frames come from (an RTSP camera, a recorded file, any GStreamer launch
//! line, the built-in simulated tank) and the ring that carries them to inference.
//! Every source delivers GRAY8 240x320 frames at 30 fps ([`crate::frame`]). Nothing here
//! scores frames.

pub mod gst_source;
pub mod pipeline;
pub mod preprocess;
pub mod read;
pub mod ring;
pub mod sim_source;

use std::path::{Path, PathBuf};

use crate::frame::Crop;
use crate::{Error, Result};

/// A password, kept out of every message: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The password itself, for the one place that needs it (the element property).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What the user asked to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// An RTSP camera; the location carries no credentials (they are kept apart).
    Rtsp {
        location: String,
        user: Option<String>,
        password: Option<Secret>,
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

    /// Whether `fast` can apply: everything but a camera can go as fast as it is scored
    /// (a file as fast as it decodes, the simulator as fast as it renders), blocking on a
    /// full ring instead of dropping.
    pub fn can_go_fast(&self) -> bool {
        !matches!(self, SourceKind::Rtsp { .. })
    }
}

/// A source, parsed, with a name safe to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// The source without credentials: what logs, events and `config check` show.
    pub display: String,
}

impl SourceSpec {
    /// Parses `rtsp://...` (also `rtsps://`, `rtspt://`), `file://...`, `gst:<launch
    /// line>`, `sim[:SEED]` or a file path. A file must exist and be readable.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        if let Some(rest) = s.strip_prefix("sim") {
            let seed = match rest.strip_prefix(':') {
                Some(n) => n.parse().map_err(|_| {
                    Error::Input(format!(
                        "source {s:?}: seed {n:?} is not a number; expected sim or sim:SEED"
                    ))
                })?,
                None if rest.is_empty() => 1,
                None => return Self::file(Path::new(s), s),
            };
            return Ok(SourceSpec {
                kind: SourceKind::Sim { seed },
                display: format!("sim:{seed}"),
            });
        }
        if let Some(launch) = s.strip_prefix("gst:") {
            if launch.trim().is_empty() {
                return Err(Error::Input(
                    "source gst: needs a launch line, e.g. gst:videotestsrc".into(),
                ));
            }
            return Ok(SourceSpec {
                kind: SourceKind::Launch(launch.to_owned()),
                display: format!("gst:{}", redact_launch(launch)),
            });
        }
        let lower = s.to_ascii_lowercase();
        if ["rtsp://", "rtsps://", "rtspt://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Self::rtsp(s);
        }
        if lower.starts_with("file://") {
            let (path, _host) = gstreamer::glib::filename_from_uri(s).map_err(|e| {
                Error::Input(format!(
                    "source {s:?}: {e}; expected a file:// URI of a local file"
                ))
            })?;
            return Self::file(&path, s);
        }
        if lower.contains("://") {
            return Err(Error::Input(format!(
                "source {}: unsupported scheme; expected rtsp://, file://, gst:, sim or a file path",
                redact_url(s)
            )));
        }
        Self::file(Path::new(s), s)
    }

    fn rtsp(s: &str) -> Result<SourceSpec> {
        let bad = |what: &str| {
            Error::Input(format!(
                "source {}: {what}; expected rtsp://[user[:password]@]host[:port][/path]",
                redact_url(s)
            ))
        };
        let mut url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let decode = |v: &str| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = Some(decode(url.username())).filter(|u| !u.is_empty());
        let password = url.password().map(|p| Secret::new(decode(p)));
        // Neither can fail on a URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let location = url.to_string();
        if location.contains('"') {
            return Err(bad("a location may not contain '\"'"));
        }
        Ok(SourceSpec {
            display: location.clone(),
            kind: SourceKind::Rtsp {
                location,
                user,
                password,
            },
        })
    }

    /// A file source: `path` must be a readable file; `given` is how the user wrote it.
    fn file(path: &Path, given: &str) -> Result<SourceSpec> {
        let read_error = |source| Error::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if meta.is_dir() {
            return Err(Error::bad_input(
                path,
                "is a directory; expected a video file",
            ));
        }
        std::fs::File::open(path).map_err(read_error)?;
        let abs = std::fs::canonicalize(path).map_err(read_error)?;
        let uri = gstreamer::glib::filename_to_uri(&abs, None)
            .map_err(|e| Error::bad_input(path, format!("{e}; expected a local file path")))?;
        Ok(SourceSpec {
            display: given.to_owned(),
            kind: SourceKind::File {
                uri: uri.to_string(),
                path: path.to_owned(),
            },
        })
    }

    /// Sets the credentials of an RTSP camera (a config file's `username` and password,
    /// or a password from the environment); `None` keeps what the URL gave.
    pub fn with_credentials(mut self, user: Option<String>, password: Option<Secret>) -> Self {
        if let SourceKind::Rtsp {
            user: u,
            password: p,
            ..
        } = &mut self.kind
        {
            if user.is_some() {
                *u = user;
            }
            if password.is_some() {
                *p = password;
            }
        }
        self
    }

    /// The RTSP camera's user name, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.kind {
            SourceKind::Rtsp { user, .. } => user.as_deref(),
            _ => None,
        }
    }

    /// Whether an RTSP camera has a password set.
    pub fn has_password(&self) -> bool {
        matches!(
            &self.kind,
            SourceKind::Rtsp {
                password: Some(_),
                ..
            }
        )
    }
}

/// A URL with any `user:password@` removed, for messages.
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let end = rest.find(['/', '"', ' ', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => s.to_owned(),
    }
}

/// A GStreamer launch line as it may be printed: credentials in any URL removed, and the
/// value of any password property (`user-pw=`, `proxy-pw=`, `password=`) replaced by `***`.
pub fn redact_launch(line: &str) -> String {
    line.split(' ')
        .map(|token| match token.split_once('=') {
            Some((key, _)) if key.ends_with("-pw") || key.ends_with("password") => {
                format!("{key}=***")
            }
            _ if token.contains("://") => redact_url(token),
            _ => token.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lower transport an RTSP camera's stream comes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// TCP first (it passes NAT and firewalls); UDP when the camera refuses TCP (461
    /// Unsupported Transport), and TCP again when UDP packets do not arrive. The setting
    /// only: a stream in use is always TCP or UDP.
    #[default]
    Auto,
    /// Interleaved in the RTSP connection.
    Tcp,
    /// RTP over UDP unicast.
    Udp,
}

impl std::str::FromStr for RtspTransport {
    type Err = Error;
    fn from_str(s: &str) -> Result<RtspTransport> {
        match s {
            "auto" => Ok(RtspTransport::Auto),
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            _ => Err(Error::Input(format!(
                "rtsp_transport {s:?}; expected auto, tcp or udp"
            ))),
        }
    }
}

impl std::fmt::Display for RtspTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtspTransport::Auto => "auto",
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        })
    }
}

/// How a source is captured (what the user asked; one run's state lives elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// Cut out of the source's picture before scaling to 320x240.
    pub crop: Option<Crop>,
    /// Files (and the simulator) as fast as they are scored instead of at real speed.
    pub fast: bool,
    /// RTSP jitter-buffer latency.
    pub rtsp_latency_ms: u32,
    /// RTSP lower transport.
    pub rtsp_transport: RtspTransport,
    /// Frames the ring holds.
    pub ring_slots: usize,
    /// With clips or the web page's view: the clips branch's widest picture (the branch
    /// exists only then).
    pub clip_width: Option<u32>,
    /// The clips branch's most pictures a second; `None`: every one.
    pub clip_rate: Option<u32>,
    /// The simulator only: its frames stop for a while, as a camera's stream that freezes
    /// (for benchmarks; not a config setting).
    pub sim_stall: Option<Stall>,
}

/// A stretch without frames: from `at` after the start, for `lasting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub at: std::time::Duration,
    pub lasting: std::time::Duration,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            crop: None,
            fast: false,
            rtsp_latency_ms: 100,
            rtsp_transport: RtspTransport::Auto,
            ring_slots: 32,
            clip_width: None,
            clip_rate: None,
            sim_stall: None,
        }
    }
}

impl CaptureSettings {
    /// Whether a source of kind `kind` is read fast: asked for, and not a camera (which
    /// cannot wait). Its ring, its clips branch and its clips then wait instead of dropping.
    pub fn reads_fast(&self, kind: &SourceKind) -> bool {
        self.fast && kind.can_go_fast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_credentials_are_kept_apart() {
        let s = SourceSpec::parse("rtsp://user:se%40cret@127.0.0.1:8554/tank").unwrap();
        assert_eq!(s.display, "rtsp://127.0.0.1:8554/tank");
        assert_eq!(
            s.kind,
            SourceKind::Rtsp {
                location: "rtsp://127.0.0.1:8554/tank".into(),
                user: Some("user".into()),
                password: Some(Secret::new("se@cret")),
            }
        );
        assert_eq!(format!("{s:?}").matches("se@cret").count(), 0);
        assert_eq!(redact_url("rtsp://a:b@h/x"), "rtsp://h/x");
    }

    #[test]
    fn rtsp_urls_of_every_shape() {
        // IPv6, a query without a path, a user without a password.
        let s = SourceSpec::parse("rtsp://lab@[::1]:8554?channel=2").unwrap();
        assert_eq!(s.display, "rtsp://[::1]:8554?channel=2");
        assert_eq!(s.user(), Some("lab"));
        assert!(!s.has_password());
        let s = s.with_credentials(None, Some(Secret::new("pw")));
        assert!(s.has_password());
        assert!(SourceSpec::parse("rtsp://").is_err());
        assert!(SourceSpec::parse("rtsp:///tank").is_err());
        let s = SourceSpec::parse("RTSP://Cam.Lab/Stream1").unwrap();
        assert_eq!(s.display, "rtsp://Cam.Lab/Stream1");
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
    fn launch_lines_are_printed_without_credentials() {
        let s = SourceSpec::parse(
            "gst:rtspsrc location=\"rtsp://u:p4ss@cam/x\" user-pw=s3cret ! decodebin",
        )
        .unwrap();
        assert_eq!(
            s.display,
            "gst:rtspsrc location=\"rtsp://cam/x\" user-pw=*** ! decodebin"
        );
        assert!(matches!(s.kind, SourceKind::Launch(l) if l.contains("s3cret")));
    }

    #[test]
    fn files_become_escaped_uris() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b#.mkv");
        std::fs::write(&path, b"x").unwrap();
        let s = SourceSpec::parse(path.to_str().unwrap()).unwrap();
        let SourceKind::File { uri, .. } = &s.kind else {
            panic!("a file")
        };
        assert!(
            uri.starts_with("file:///") && uri.ends_with("/a%20b%23.mkv"),
            "{uri}"
        );
        let again = SourceSpec::parse(uri).unwrap();
        assert!(matches!(&again.kind, SourceKind::File { uri: u, .. } if u == uri));
        assert!(SourceSpec::parse("file:///nonexistent/x.mkv").is_err());
    }
}
