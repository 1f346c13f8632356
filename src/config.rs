//! The lab's config file: one `[defaults]` table and one `[[camera]]` table per camera,
//! every camera key also allowed in `[defaults]` (all but `name` and `source`):
//!
//! ```toml
//! [defaults]
//! model = "default"          # "default" (embedded), "none", or a .safetensors / SavedModel path
//! mode = "continuous"        # or "exact"
//!
//! [[camera]]
//! name = "tank-a"            # required, unique, [A-Za-z0-9_-]+: the `source` of its events
//! source = "rtsp://cam-a.lab/stream1"
//! username = "lab"
//! password_env = "TANK_A_PASSWORD"
//! crop = [240, 60, 800, 600]
//! threshold = 0.55
//! ```
//!
//! Outputs besides stdout are tables of their own:
//!
//! ```toml
//! [output.mqtt]
//! url = "mqtt://bw@broker.lab/lab/rack3"
//! password_env = "BW_MQTT_PASSWORD"
//! spool_dir = "/var/lib/burstwatch/mqtt"
//!
//! [[output.webhook]]
//! url = "http://stimulus.lab:8000/burst"
//! events = ["alert"]
//!
//! [output.clips]             # a clip and a snapshot of every alert (a camera opts out
//! dir = "/var/lib/burstwatch/clips"   # with clips = false)
//! pre_s = 5
//! post_s = 3
//! max_mb = 2000
//! ```
//!
//! The web page and Prometheus's `/metrics` (see [`crate::web`]):
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:8080"  # the default; 0.0.0.0:8080 for the lab's other machines
//! token_env = "BW_HTTP_TOKEN"   # optional: every request then needs this bearer token
//! ```
//!
//! Cameras with the same model, mode and device share one engine, which batches their steps
//! (see [`crate::engine::service`]):
//!
//! ```toml
//! [engine]
//! batch_wait_ms = 1          # how long a ready step waits for the others' (default: 1 on
//!                            # CUDA, 0 on the CPU)
//! ```
//!
//! Relative paths (file sources, models, password files, spool folders) resolve against
//! the file's folder. Every mistake (an unknown key, a missing or repeated name, a bad value, an
//! unset `password_env`, an unreadable `password_file`) is one [`Error::Config`] naming
//! the file, line and column and what was expected there. Nothing here starts anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::capture::{RtspTransport, Secret, SourceKind, SourceSpec};
use crate::clips::ClipSettings;
use crate::frame::Crop;
use crate::live::{ModelChoice, SourceConfig};
use crate::output::{MqttSettings, OutputSettings, WebhookSettings};
use crate::web::HttpSettings;

/// Where `[http]` listens without a `listen` key: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
use crate::{Error, Result};

/// A config file, checked: its cameras, ready for [`crate::live::Runner`].
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub cameras: Vec<CameraEntry>,
    /// Outputs besides stdout (`[output.mqtt]`, `[[output.webhook]]`).
    pub outputs: OutputSettings,
    /// The web page and `/metrics` (`[http]`); `None`: not served.
    pub http: Option<HttpSettings>,
    /// `[engine] batch_wait_ms`; `None`: each device's default.
    pub batch_wait: Option<Duration>,
}

/// One camera of a config file.
#[derive(Debug, Clone)]
pub struct CameraEntry {
    pub config: SourceConfig,
    /// Where its password came from (`env NAME` or `file PATH`), never the password.
    pub password_from: Option<String>,
}

impl LabConfig {
    /// The cameras' settings, in the file's order.
    pub fn sources(&self) -> Vec<SourceConfig> {
        self.cameras.iter().map(|c| c.config.clone()).collect()
    }
}

/// Reads and checks a config file; environment variables (`password_env`) come from the
/// process environment.
pub fn load(path: &Path) -> Result<LabConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Checks the text of a config file read from `path`; `env` looks environment variables up.
pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<LabConfig> {
    let at = Locator { text, path };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at.error(offset, e.message().to_owned())
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let defaults = match raw.defaults {
        Some(d) => {
            for (key, span) in [
                ("name", d.get_ref().name.as_ref().map(Spanned::span)),
                ("source", d.get_ref().source.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    return Err(at.error(
                        span.start,
                        format!("{key} in [defaults]; expected it in each [[camera]] table"),
                    ));
                }
            }
            d.into_inner()
        }
        None => RawCamera::default(),
    };
    if raw.camera.is_empty() {
        return Err(at.error(
            0,
            "no [[camera]] table; expected at least one camera".to_owned(),
        ));
    }
    let mut output = raw.output;
    let clips = match output.as_mut().and_then(|o| o.clips.take()) {
        Some(c) => Some(clip_settings(&at, dir, c)?),
        None => None,
    };
    let mut cameras: Vec<CameraEntry> = Vec::with_capacity(raw.camera.len());
    let mut names: Vec<(String, usize)> = Vec::new();
    for camera in raw.camera {
        let header = camera.span().start;
        let camera = camera.into_inner();
        let name = camera.name.clone().ok_or_else(|| {
            at.error(
                header,
                "a [[camera]] without a name; expected name = \"...\"".into(),
            )
        })?;
        check_name(&at, &name)?;
        if let Some((_, first)) = names.iter().find(|(n, _)| n == name.get_ref()) {
            return Err(at.error(
                name.span().start,
                format!(
                    "camera name {:?} is used twice (first at line {}); expected unique names",
                    name.get_ref(),
                    at.line_column(*first).0
                ),
            ));
        }
        names.push((name.get_ref().clone(), name.span().start));
        // The camera's own `clips`, else the defaults' (as `RawCamera::over` takes it).
        let clips_key = camera.clips.clone().or_else(|| defaults.clips.clone());
        let mut entry = resolve(&at, dir, env, name, camera, &defaults, header)?;
        entry.config.clips = match (clips_key, &clips) {
            (Some(on), None) if *on.get_ref() => {
                return Err(at.at(
                    &on,
                    "clips = true without [output.clips]; expected an [output.clips] table with its dir",
                ))
            }
            (Some(on), _) if !*on.get_ref() => None,
            (_, c) => c.clone(),
        };
        cameras.push(entry);
    }
    let outputs = match output {
        Some(o) => outputs(&at, dir, env, o)?,
        None => OutputSettings::default(),
    };
    let http = match raw.http {
        Some(h) => Some(http_settings(&at, dir, env, h)?),
        None => None,
    };
    let batch_wait = match raw.engine.and_then(|e| e.into_inner().batch_wait_ms) {
        Some(ms) => {
            let v = *ms.get_ref();
            let wait =
                batch_wait_ms(v).map_err(|e| at.at(&ms, format!("batch_wait_ms {v}; {e}")))?;
            Some(wait)
        }
        None => None,
    };
    Ok(LabConfig {
        path: path.to_owned(),
        cameras,
        outputs,
        http,
        batch_wait,
    })
}

/// `[http]`, checked: the address (loopback by default) and the token, when asked for.
fn http_settings(
    at: &Locator,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    raw: Spanned<RawHttp>,
) -> Result<HttpSettings> {
    let raw = raw.into_inner();
    let mut s = match &raw.listen {
        Some(l) => HttpSettings::parse(l.get_ref()).map_err(|e| at.at(l, e))?,
        None => HttpSettings::parse(DEFAULT_LISTEN)?,
    };
    let (token, from) = secret(
        at,
        dir,
        env,
        (&raw.token_env, &raw.token_file),
        "the web page's bearer token",
    )?;
    s.token = token.map(|t| Secret::new(t.expose().trim()));
    s.token_from = from;
    Ok(s)
}

/// The file's top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: Option<Spanned<RawCamera>>,
    #[serde(default)]
    camera: Vec<Spanned<RawCamera>>,
    #[serde(default)]
    output: Option<RawOutputs>,
    http: Option<Spanned<RawHttp>>,
    engine: Option<Spanned<RawEngine>>,
}

/// `[engine]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    batch_wait_ms: Option<Spanned<f64>>,
}

/// The longest batch wait a config may ask for: a frame lasts 33 ms, and a wait longer
/// than a frame is a mistake.
pub const MAX_BATCH_WAIT_MS: f64 = 30.0;

/// A batch wait given in milliseconds (`[engine] batch_wait_ms`, `run --batch-wait-ms`),
/// checked; the error says what was expected.
pub fn batch_wait_ms(ms: f64) -> std::result::Result<Duration, String> {
    if (0.0..=MAX_BATCH_WAIT_MS).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!(
            "expected milliseconds from 0 to {MAX_BATCH_WAIT_MS}"
        ))
    }
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

/// `[output.*]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputs {
    mqtt: Option<Spanned<RawMqtt>>,
    clips: Option<Spanned<RawClips>>,
    #[serde(default)]
    webhook: Vec<Spanned<RawWebhook>>,
}

/// `[output.mqtt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    qos: Option<Spanned<u8>>,
    predictions: Option<bool>,
    keepalive_s: Option<Spanned<f64>>,
    queue: Option<Spanned<usize>>,
    spool_dir: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    drain_s: Option<Spanned<f64>>,
}

/// `[output.clips]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClips {
    dir: Option<Spanned<String>>,
    pre_s: Option<Spanned<f64>>,
    post_s: Option<Spanned<f64>>,
    max_mb: Option<Spanned<u64>>,
    max_width: Option<Spanned<u32>>,
}

/// One `[[output.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<Spanned<String>>,
    events: Option<Spanned<Vec<String>>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    timeout_s: Option<Spanned<f64>>,
    queue: Option<Spanned<usize>>,
    spool_dir: Option<Spanned<String>>,
    drain_s: Option<Spanned<f64>>,
}

/// One `[[camera]]` (or `[defaults]`) table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    name: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    crop: Option<Spanned<[u32; 4]>>,
    preprocess: Option<Spanned<String>>,
    threshold: Option<Spanned<f64>>,
    model: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    device: Option<Spanned<String>>,
    score: Option<Spanned<String>>,
    emit: Option<Spanned<String>>,
    fast: Option<Spanned<bool>>,
    rtsp_latency_ms: Option<Spanned<u32>>,
    rtsp_transport: Option<Spanned<String>>,
    stats_every: Option<Spanned<f64>>,
    clips: Option<Spanned<bool>>,
}

/// Turns byte offsets of the file into line and column.
struct Locator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Locator<'_> {
    /// 1-based line and column (in characters) of byte `offset`.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn error(&self, offset: usize, what: String) -> Error {
        let (line, column) = self.line_column(offset);
        Error::Config {
            path: self.path.to_owned(),
            line,
            column,
            what,
        }
    }

    /// An error at a value, with what its parser said.
    fn at<T>(&self, value: &Spanned<T>, what: impl std::fmt::Display) -> Error {
        self.error(value.span().start, what.to_string())
    }
}

fn check_name(at: &Locator, name: &Spanned<String>) -> Result<()> {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(at.at(
            name,
            format!("camera name {n:?}; expected letters, digits, '_' and '-' only"),
        ))
    }
}

/// A setting parsed with its type's `FromStr`, its error placed at the value.
fn parsed<T>(at: &Locator, v: &Option<Spanned<String>>, default: T) -> Result<T>
where
    T: std::str::FromStr<Err = Error>,
{
    match v {
        Some(s) => s.get_ref().parse().map_err(|e: Error| at.at(s, e)),
        None => Ok(default),
    }
}

impl RawCamera {
    /// This camera's keys, each taken from `defaults` where the camera does not set it.
    /// The camera's own `password_env` / `password_file` replaces the defaults' as a pair.
    fn over(self, defaults: &RawCamera) -> RawCamera {
        let d = defaults.clone();
        let own_password = self.password_env.is_some() || self.password_file.is_some();
        let (password_env, password_file) = if own_password {
            (self.password_env, self.password_file)
        } else {
            (d.password_env, d.password_file)
        };
        RawCamera {
            name: self.name,
            source: self.source,
            username: self.username.or(d.username),
            password_env,
            password_file,
            crop: self.crop.or(d.crop),
            preprocess: self.preprocess.or(d.preprocess),
            threshold: self.threshold.or(d.threshold),
            model: self.model.or(d.model),
            mode: self.mode.or(d.mode),
            device: self.device.or(d.device),
            score: self.score.or(d.score),
            emit: self.emit.or(d.emit),
            fast: self.fast.or(d.fast),
            rtsp_latency_ms: self.rtsp_latency_ms.or(d.rtsp_latency_ms),
            rtsp_transport: self.rtsp_transport.or(d.rtsp_transport),
            stats_every: self.stats_every.or(d.stats_every),
            clips: self.clips.or(d.clips),
        }
    }
}

/// One camera with the defaults filled in, its paths resolved and its values checked.
fn resolve(
    at: &Locator,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    name: Spanned<String>,
    camera: RawCamera,
    defaults: &RawCamera,
    header: usize,
) -> Result<CameraEntry> {
    let c = camera.over(defaults);
    let source = c.source.as_ref().ok_or_else(|| {
        at.error(
            header,
            format!(
                "camera {:?} has no source; expected source = \"rtsp://...\", a file, \"gst:...\" or \"sim:SEED\"",
                name.get_ref()
            ),
        )
    })?;
    let spec =
        SourceSpec::parse(&relative_source(source.get_ref(), dir)).map_err(|e| at.at(source, e))?;
    let is_rtsp = matches!(spec.kind, SourceKind::Rtsp { .. });
    for key in [&c.username, &c.password_env, &c.password_file]
        .into_iter()
        .flatten()
    {
        if !is_rtsp {
            return Err(at.at(
                key,
                format!(
                    "credentials for source {}; expected them only for rtsp:// cameras",
                    spec.display
                ),
            ));
        }
    }
    let (password, password_from) = secret(
        at,
        dir,
        env,
        (&c.password_env, &c.password_file),
        "the camera's password",
    )?;
    let spec = spec.with_credentials(c.username.clone().map(Spanned::into_inner), password);

    let mut config = SourceConfig::new(name.into_inner(), spec);
    if let Some(crop) = &c.crop {
        let [x, y, w, h] = *crop.get_ref();
        config.capture.crop = Some(Crop::new(x, y, w, h).map_err(|e| at.at(crop, e))?);
    }
    config.preprocess = parsed(at, &c.preprocess, config.preprocess)?;
    config.mode = parsed(at, &c.mode, config.mode)?;
    config.device = parsed(at, &c.device, config.device)?;
    config.score = parsed(at, &c.score, config.score)?;
    config.emit = parsed(at, &c.emit, config.emit)?;
    if let Some(t) = &c.threshold {
        let v = *t.get_ref();
        if !(0.0..=1.0).contains(&v) {
            return Err(at.at(
                t,
                format!("threshold {v}; expected a probability between 0 and 1"),
            ));
        }
        config.threshold = Some(v);
    }
    if let Some(m) = &c.model {
        let choice = ModelChoice::parse(m.get_ref()).relative_to(dir);
        if let ModelChoice::File(p) = &choice {
            std::fs::metadata(p).map_err(|e| {
                at.at(
                    m,
                    format!(
                        "model {}: {e}; expected \"default\", \"none\", or a .safetensors file or SavedModel folder",
                        p.display()
                    ),
                )
            })?;
        }
        config.model = choice;
    }
    if let Some(f) = &c.fast {
        config.capture.fast = *f.get_ref();
    }
    if let Some(l) = &c.rtsp_latency_ms {
        config.capture.rtsp_latency_ms = *l.get_ref();
    }
    config.capture.rtsp_transport = parsed(at, &c.rtsp_transport, RtspTransport::Auto)?;
    if let Some(s) = &c.stats_every {
        let v = *s.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            return Err(at.at(
                s,
                format!("stats_every {v}; expected a positive number of seconds"),
            ));
        }
        config.stats_every = Duration::from_secs_f64(v);
    }
    Ok(CameraEntry {
        config,
        password_from,
    })
}

/// A secret (`what`: "the camera's password", ...) from an environment variable or a
/// file (the `password_env` / `password_file` keys, or `token_env` / `token_file`), and
/// where it came from (`env NAME`, `file PATH`; never the secret).
fn secret(
    at: &Locator,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    (from_env, from_file): (&Option<Spanned<String>>, &Option<Spanned<String>>),
    what: &str,
) -> Result<(Option<Secret>, Option<String>)> {
    match (from_env, from_file) {
        (Some(_), Some(file)) => Err(at.at(
            file,
            "both an environment variable and a file for the secret; expected one of them",
        )),
        (Some(var), None) => {
            let name = var.get_ref();
            match env(name) {
                Some(p) if !p.is_empty() => Ok((Some(Secret::new(p)), Some(format!("env {name}")))),
                Some(_) => Err(at.at(
                    var,
                    format!("environment variable {name} is empty; expected {what}"),
                )),
                None => Err(at.at(
                    var,
                    format!("environment variable {name} is not set; expected it to hold {what}"),
                )),
            }
        }
        (None, Some(file)) => {
            let p = dir.join(file.get_ref());
            let text = std::fs::read_to_string(&p).map_err(|e| {
                at.at(
                    file,
                    format!(
                        "file {}: {e}; expected a readable file holding {what}",
                        p.display()
                    ),
                )
            })?;
            let pw = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if pw.is_empty() {
                return Err(at.at(
                    file,
                    format!("file {} is empty; expected {what}", p.display()),
                ));
            }
            Ok((Some(Secret::new(pw)), Some(format!("file {}", p.display()))))
        }
        (None, None) => Ok((None, None)),
    }
}

/// A positive number of seconds.
fn seconds(
    at: &Locator,
    v: &Option<Spanned<f64>>,
    key: &str,
    default: Duration,
) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(s) => {
            let x = *s.get_ref();
            if x > 0.0 && x.is_finite() && x < 1e9 {
                Ok(Duration::from_secs_f64(x))
            } else {
                Err(at.at(
                    s,
                    format!("{key} {x}; expected a positive number of seconds"),
                ))
            }
        }
    }
}

/// `[output.clips]`, checked.
fn clip_settings(at: &Locator, dir: &Path, raw: Spanned<RawClips>) -> Result<ClipSettings> {
    let header = raw.span().start;
    let c = raw.into_inner();
    let folder = c.dir.as_ref().ok_or_else(|| {
        at.error(
            header,
            "[output.clips] without a dir; expected dir = \"/path/to/clips\"".into(),
        )
    })?;
    let mut s = ClipSettings::new(dir.join(folder.get_ref()));
    let span_seconds = |v: &Option<Spanned<f64>>, key: &str, default: Duration| match v {
        Some(x) if !(*x.get_ref() >= 0.0 && x.get_ref().is_finite()) => Err(at.at(
            x,
            format!("{key} {}; expected 0 to 60 seconds", x.get_ref()),
        )),
        Some(x) => Ok(Duration::from_secs_f64(*x.get_ref())),
        None => Ok(default),
    };
    s.pre = span_seconds(&c.pre_s, "pre_s", s.pre)?;
    s.post = span_seconds(&c.post_s, "post_s", s.post)?;
    if let Some(m) = &c.max_mb {
        s.max_mb = *m.get_ref();
    }
    if let Some(w) = &c.max_width {
        s.max_width = *w.get_ref();
    }
    if let Some((key, what)) = s.problem() {
        let span = match key {
            "pre_s" => c.pre_s.as_ref().map(Spanned::span),
            "post_s" => c.post_s.as_ref().map(Spanned::span),
            "max_mb" => c.max_mb.as_ref().map(Spanned::span),
            _ => c.max_width.as_ref().map(Spanned::span),
        };
        return Err(at.error(span.map_or(header, |sp| sp.start), what));
    }
    Ok(s)
}

/// A path written in the file, found relative to the file's folder.
fn path_in(dir: &Path, v: &Option<Spanned<String>>) -> Option<PathBuf> {
    v.as_ref().map(|p| dir.join(p.get_ref()))
}

/// `[output.mqtt]` and `[[output.webhook]]`, checked.
fn outputs(
    at: &Locator,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    raw: RawOutputs,
) -> Result<OutputSettings> {
    let mut out = OutputSettings::default();
    if let Some(m) = raw.mqtt {
        let header = m.span().start;
        let m = m.into_inner();
        let url = m.url.as_ref().ok_or_else(|| {
            at.error(
                header,
                "[output.mqtt] without a url; expected url = \"mqtt://host[:port]/PREFIX\"".into(),
            )
        })?;
        let mut s = MqttSettings::from_url(url.get_ref()).map_err(|e| at.at(url, e))?;
        if let Some(u) = &m.username {
            s.username = Some(u.get_ref().clone());
        }
        let (password, from) = secret(
            at,
            dir,
            env,
            (&m.password_env, &m.password_file),
            "the broker's password",
        )?;
        s.password = password;
        s.password_from = from;
        if let Some(c) = &m.client_id {
            s.client_id = c.get_ref().clone();
        }
        if let Some(q) = &m.qos {
            s.qos = *q.get_ref();
        }
        s.predictions = m.predictions.unwrap_or(false);
        s.keepalive = seconds(at, &m.keepalive_s, "keepalive_s", s.keepalive)?;
        s.drain = seconds(at, &m.drain_s, "drain_s", s.drain)?;
        if let Some(q) = &m.queue {
            s.queue = *q.get_ref();
        }
        s.spool_dir = path_in(dir, &m.spool_dir);
        s.ca_file = path_in(dir, &m.ca_file);
        // A mistake stands at the key that makes it (the url when that key is a default).
        if let Some((key, e)) = s.problem() {
            let span = match key {
                "qos" => m.qos.as_ref().map(Spanned::span),
                "queue" => m.queue.as_ref().map(Spanned::span),
                "client_id" => m.client_id.as_ref().map(Spanned::span),
                "keepalive_s" => m.keepalive_s.as_ref().map(Spanned::span),
                "username" => m
                    .password_env
                    .as_ref()
                    .or(m.password_file.as_ref())
                    .map(Spanned::span),
                "ca_file" => m.ca_file.as_ref().map(Spanned::span),
                _ => None,
            };
            let at_key = span.map_or(url.span().start, |sp| sp.start);
            return Err(at.error(at_key, e.to_string()));
        }
        out.mqtt = Some(s);
    }
    for w in raw.webhook {
        let header = w.span().start;
        let w = w.into_inner();
        let url = w.url.as_ref().ok_or_else(|| {
            at.error(
                header,
                "[[output.webhook]] without a url; expected url = \"http://...\"".into(),
            )
        })?;
        let mut s = WebhookSettings::new(url.get_ref().clone());
        if let Some(e) = &w.events {
            s.events = e.get_ref().clone();
        }
        let (token, from) = secret(
            at,
            dir,
            env,
            (&w.token_env, &w.token_file),
            "the webhook's bearer token",
        )?;
        s.token = token;
        s.token_from = from;
        s.timeout = seconds(at, &w.timeout_s, "timeout_s", s.timeout)?;
        s.drain = seconds(at, &w.drain_s, "drain_s", s.drain)?;
        if let Some(q) = &w.queue {
            s.queue = *q.get_ref();
        }
        s.spool_dir = path_in(dir, &w.spool_dir);
        if let Some((key, e)) = s.problem() {
            let span = match key {
                "events" => w.events.as_ref().map(Spanned::span),
                "queue" => w.queue.as_ref().map(Spanned::span),
                "timeout_s" => w.timeout_s.as_ref().map(Spanned::span),
                _ => None,
            };
            let at_key = span.map_or(url.span().start, |sp| sp.start);
            return Err(at.error(at_key, e.to_string()));
        }
        if let Some(dir) = &s.spool_dir {
            if out
                .webhooks
                .iter()
                .any(|o: &WebhookSettings| o.spool_dir.as_ref() == Some(dir))
                || out.mqtt.as_ref().and_then(|m| m.spool_dir.as_ref()) == Some(dir)
            {
                return Err(at.at(
                    w.spool_dir.as_ref().expect("set"),
                    format!(
                        "spool_dir {} is used by another output; expected one folder per output",
                        dir.display()
                    ),
                ));
            }
        }
        out.webhooks.push(s);
    }
    Ok(out)
}

/// A file source written relative to the config file is found beside it; URLs, launch
/// lines and the simulator are left as they are.
fn relative_source(source: &str, dir: &Path) -> String {
    let is_path = !(source.contains("://")
        || source.starts_with("gst:")
        || source == "sim"
        || source.starts_with("sim:"));
    if is_path && Path::new(source).is_relative() {
        dir.join(source).to_string_lossy().into_owned()
    } else {
        source.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<LabConfig> {
        let env = |name: &str| (name == "TANK_A_PASSWORD").then(|| "s3cret".to_owned());
        parse(text, Path::new("/etc/bw/lab.toml"), &env)
    }

    fn error(text: &str) -> (usize, usize, String) {
        match check(text) {
            Err(Error::Config {
                line, column, what, ..
            }) => (line, column, what),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_every_camera_and_cameras_override_them() {
        let c = check(
            "[defaults]\nmode = \"exact\"\nthreshold = 0.5\nemit = \"all\"\n\n\
             [[camera]]\nname = \"tank-a\"\nsource = \"rtsp://cam-a.lab/stream1\"\nusername = \"lab\"\n\
             password_env = \"TANK_A_PASSWORD\"\ncrop = [240, 60, 800, 600]\npreprocess = \"bgsub\"\n\
             threshold = 0.55\n\n\
             [[camera]]\nname = \"tank_b\"\nsource = \"sim:7\"\nmodel = \"none\"\nstats_every = 2.5\n",
        )
        .unwrap();
        assert_eq!(c.cameras.len(), 2);
        let a = &c.cameras[0].config;
        assert_eq!(a.name, "tank-a");
        assert_eq!(a.mode, crate::engine::Mode::Exact);
        assert_eq!(a.threshold, Some(0.55));
        assert_eq!(a.emit, crate::output::event::Emit::All);
        assert_eq!(a.capture.crop, Some(Crop::new(240, 60, 800, 600).unwrap()));
        assert_eq!(a.source.user(), Some("lab"));
        assert!(a.source.has_password());
        assert_eq!(
            c.cameras[0].password_from.as_deref(),
            Some("env TANK_A_PASSWORD")
        );
        assert!(!format!("{:?}", c).contains("s3cret"));
        let b = &c.cameras[1].config;
        assert_eq!(b.threshold, Some(0.5));
        assert_eq!(b.model, ModelChoice::None);
        assert_eq!(b.stats_every, Duration::from_millis(2500));
        assert_eq!(b.source.display, "sim:7");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        assert_eq!(
            relative_source("tank.mkv", Path::new("/etc/bw")),
            "/etc/bw/tank.mkv"
        );
        assert_eq!(
            relative_source("/data/t.mkv", Path::new("/etc/bw")),
            "/data/t.mkv"
        );
        assert_eq!(relative_source("sim:3", Path::new("/etc/bw")), "sim:3");
        assert_eq!(
            relative_source("gst:videotestsrc", Path::new("/x")),
            "gst:videotestsrc"
        );
        // A missing file is reported at its value.
        let (line, column, what) = error("[[camera]]\nname = \"a\"\nsource = \"tank.mkv\"\n");
        assert_eq!((line, column), (3, 10));
        assert!(what.contains("/etc/bw/tank.mkv"), "{what}");
    }

    #[test]
    fn every_mistake_is_placed() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nthresold = 0.5\n", (4, 1), "unknown field `thresold`"),
            ("[defaults]\nnmae = \"x\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 1), "unknown field `nmae`"),
            ("[output.kafka]\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (1, 9), "unknown field `kafka`"),
            ("[output.mqtt]\nurl = \"mqtt://h/x\"\nqos = 0\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (3, 7), "expected 1 or 2"),
            ("[output.mqtt]\nurl = \"http://h/x\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 7), "expected mqtt://"),
            ("[output.mqtt]\nqos = 1\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (1, 1), "without a url"),
            ("[output.mqtt]\nurl = \"mqtt://h/x\"\npassword_env = \"NOPE\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (3, 16), "the broker's password"),
            ("[[output.webhook]]\nurl = \"http://h/x\"\nevents = [\"alarm\"]\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (3, 10), "event type \"alarm\""),
            ("[[output.webhook]]\nurl = \"ftp://h/x\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 7), "http:// or https://"),
            ("[output.mqtt]\nurl = \"mqtt://h/x\"\nclient_id = \"c\"\nca_file = \"ca.pem\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (4, 11), "with mqtts:// only"),
            ("[[output.webhook]]\nurl = \"http://h/x\"\nevents = [\"alert\"]\nqueue = 0\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (4, 9), "queue 0"),
            ("[output.clips]\npre_s = 2\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (1, 1), "without a dir"),
            ("[output.clips]\ndir = \"c\"\npost_s = 90\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (3, 10), "post_s 90"),
            ("[output.clips]\ndir = \"c\"\nmax_width = 641\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (3, 13), "an even number"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nclips = true\n", (4, 9), "without [output.clips]"),
            ("[http]\nlisten = \"nope\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 10), "expected IP:PORT"),
            ("[http]\ntoken_env = \"NOPE\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 13), "the web page's bearer token"),
            ("[http]\nport = 80\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 1), "unknown field `port`"),
            ("[engine]\nbatch_wait_ms = 50\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 17), "expected milliseconds from 0 to 30"),
            ("[engine]\nbatch_wait_ms = -1\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 17), "batch_wait_ms -1"),
            ("[engine]\nthreads = 2\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 1), "unknown field `threads`"),
            ("[[camera]]\nsource = \"sim\"\n", (1, 1), "without a name"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\n[[camera]]\nname = \"a\"\nsource = \"sim:2\"\n", (5, 8), "used twice (first at line 2)"),
            ("[[camera]]\nname = \"tank a\"\nsource = \"sim\"\n", (2, 8), "letters, digits"),
            ("[[camera]]\nname = \"a\"\n", (1, 1), "has no source"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nmode = \"exactly\"\n", (4, 8), "expected continuous or exact"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nthreshold = 1.5\n", (4, 13), "between 0 and 1"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nthreshold = \"high\"\n", (4, 13), "expected f64"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\ncrop = [1, 2, 0, 4]\n", (4, 8), "above 0"),
            ("[[camera]]\nname = \"a\"\nsource = \"rtsp://h/x\"\npassword_env = \"NOPE\"\n", (4, 16), "NOPE is not set"),
            ("[[camera]]\nname = \"a\"\nsource = \"rtsp://h/x\"\npassword_file = \"nope.pass\"\n", (4, 17), "/etc/bw/nope.pass"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nusername = \"lab\"\n", (4, 12), "only for rtsp://"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\nmodel = \"m.safetensors\"\n", (4, 9), "/etc/bw/m.safetensors"),
            ("[[camera]]\nname = \"a\"\nsource = \"sim\"\ndevice = \"gpu\"\n", (4, 10), "expected auto, cpu, cuda or cuda:N"),
            ("[defaults]\nname = \"a\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n", (2, 8), "expected it in each [[camera]]"),
            ("[[camera]\n", (1, 10), "expected `]`"),
            ("", (1, 1), "no [[camera]]"),
        ];
        for (text, (line, column), what) in cases {
            let (l, c, w) = error(text);
            assert!(w.contains(what), "{text:?}: {w}");
            assert_eq!((l, c), (*line, *column), "{text:?}: {w}");
        }
    }

    #[test]
    fn clips_go_to_every_camera_but_those_that_opt_out() {
        let lab = check(
            "[output.clips]\ndir = \"clips\"\npre_s = 2\n\
             [[camera]]\nname = \"a\"\nsource = \"sim\"\n\
             [[camera]]\nname = \"b\"\nsource = \"sim:2\"\nclips = false\n",
        )
        .unwrap();
        let a = lab.cameras[0].config.clips.as_ref().unwrap();
        assert_eq!(a.dir, Path::new("/etc/bw/clips"));
        assert_eq!(
            (a.pre, a.post, a.max_mb),
            (Duration::from_secs(2), Duration::from_secs(3), 2000)
        );
        assert!(lab.cameras[1].config.clips.is_none());
    }

    #[test]
    fn the_engine_table_sets_the_batch_wait() {
        let cam = "[[camera]]\nname = \"a\"\nsource = \"sim\"\n";
        assert_eq!(check(cam).unwrap().batch_wait, None);
        let lab = check(&format!("[engine]\nbatch_wait_ms = 2.5\n{cam}")).unwrap();
        assert_eq!(lab.batch_wait, Some(Duration::from_micros(2500)));
    }

    #[test]
    fn http_listens_on_loopback_unless_told_and_takes_its_token_from_the_environment() {
        let cam = "[[camera]]\nname = \"a\"\nsource = \"sim\"\n";
        assert!(check(cam).unwrap().http.is_none());
        let h = check(&format!("[http]\n{cam}")).unwrap().http.unwrap();
        assert_eq!(h.listen.to_string(), DEFAULT_LISTEN);
        assert!(h.token.is_none());
        let text =
            format!("[http]\nlisten = \"0.0.0.0:9000\"\ntoken_env = \"TANK_A_PASSWORD\"\n{cam}");
        let h = check(&text).unwrap().http.unwrap();
        assert_eq!(h.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(h.token.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(h.token_from.as_deref(), Some("env TANK_A_PASSWORD"));
    }

    #[test]
    fn a_password_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pass"), "pa ss\r\n").unwrap();
        let text =
            "[[camera]]\nname = \"a\"\nsource = \"rtsp://lab@h/x\"\npassword_file = \"a.pass\"\n";
        let c = parse(text, &dir.path().join("lab.toml"), &|_| None).unwrap();
        let SourceKind::Rtsp { password, user, .. } = &c.cameras[0].config.source.kind else {
            panic!()
        };
        assert_eq!(password.as_ref().map(Secret::expose), Some("pa ss"));
        assert_eq!(user.as_deref(), Some("lab"));
    }
}
