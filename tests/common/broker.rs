//! A real MQTT broker for the tests (Debian's mosquitto, on 127.0.0.1, a free port, its
//! own folder), a real subscriber (mosquitto_sub), and a burstwatch run whose lines are
//! read as they come.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rtsp::{free_port, KillOnDrop};

/// A program the setup script installs (`mosquitto` lives in /usr/sbin).
fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed; the setup script installs it (apt-get install mosquitto mosquitto-clients)");
}

/// Waits until something accepts connections on `port`.
pub fn wait_listening(port: u16, within: Duration) {
    let until = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto broker; persistent (a subscriber's session and its queued messages survive
/// a restart after a clean stop).
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<KillOnDrop>,
}

impl Broker {
    /// Anonymous clients allowed.
    pub fn start() -> Broker {
        Self::start_with(None)
    }

    /// Only `user` with `password`.
    pub fn with_login(user: &str, password: &str) -> Broker {
        Self::start_with(Some((user, password)))
    }

    /// TLS only (MQTT over TLS), with a certificate for 127.0.0.1 signed by a CA made for
    /// the test ([`Broker::ca_file`]).
    pub fn with_tls() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| openssl(d, args);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=burstwatch test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let tls = format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
            d.display()
        );
        Self::start_in(dir, None, &tls)
    }

    /// The PEM of the CA that signed a TLS broker's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(login: Option<(&str, &str)>) -> Broker {
        Self::start_in(tempfile::tempdir().unwrap(), login, "")
    }

    fn start_in(dir: tempfile::TempDir, login: Option<(&str, &str)>, listener: &str) -> Broker {
        // mosquitto started as root runs as the user `mosquitto`: it must read its key and
        // password file, and write its persistence, in the test's folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\n{listener}persistence true\npersistence_location {}/\n\
             log_dest file {}/broker.log\n",
            dir.path().display(),
            dir.path().display()
        );
        match login {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwords");
                let ok = Command::new(program("mosquitto_passwd"))
                    .args(["-c", "-b"])
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .unwrap();
                assert!(ok.success(), "mosquitto_passwd");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap().path();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut b = Broker {
            port,
            dir,
            process: None,
        };
        b.restart();
        b
    }

    /// Starts it again (same port, same persistence) after [`Broker::stop`].
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "the broker runs already");
        let child = Command::new(program("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.process = Some(KillOnDrop(child));
        wait_listening(self.port, Duration::from_secs(10));
    }

    /// Stops it as a service manager would (SIGTERM: it saves its sessions and exits).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
            let _ = p.0.wait();
        }
    }

    /// Whether it saved its sessions (its persistence file exists).
    pub fn saved(&self) -> bool {
        self.dir.path().join("mosquitto.db").exists()
    }

    /// `mqtt://127.0.0.1:PORT/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("mqtt://127.0.0.1:{}/{prefix}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lines read from a child's pipe as they come, each with when it came.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<(Instant, String)>>>);

impl Lines {
    pub fn read_from(pipe: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let keep = lines.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push((Instant::now(), line));
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The lines that contain `text`.
    pub fn containing(&self, text: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|l| l.contains(text))
            .collect()
    }

    pub fn timed(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `f`; whether one did within `within`.
    pub fn wait_for(&self, within: Duration, f: impl Fn(&str) -> bool) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.0.lock().unwrap().iter().any(|(_, l)| f(l)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `mosquitto_sub -v` on `filter` at QoS 1: lines `TOPIC PAYLOAD`. With `session`, a
/// persistent session under that client id: what arrives while it is away (a broker
/// restart) waits for it.
pub struct Subscriber {
    pub lines: Lines,
    _process: KillOnDrop,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str, session: Option<&str>) -> Subscriber {
        Self::start_with(port, filter, session, &[])
    }

    /// With more mosquitto_sub arguments (`--cafile`, ...).
    pub fn start_with(port: u16, filter: &str, session: Option<&str>, more: &[&str]) -> Subscriber {
        let mut cmd = Command::new(program("mosquitto_sub"));
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", filter, "-v", "-q", "1"])
            .args(more);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts");
        let lines = Lines::read_from(child.stdout.take().unwrap());
        Subscriber {
            lines,
            _process: KillOnDrop(child),
        }
    }

    /// Every message so far as (topic, payload).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.lines
            .all()
            .into_iter()
            .map(|l| match l.split_once(' ') {
                Some((t, p)) => (t.to_owned(), p.to_owned()),
                None => (l, String::new()),
            })
            .collect()
    }
}

/// The retained message of `topic` now (a fresh subscriber's first message), or `None`.
pub fn retained(port: u16, topic: &str) -> Option<String> {
    let out = Command::new(program("mosquitto_sub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", topic, "-C", "1", "-W", "2", "--retained-only"])
        .output()
        .expect("mosquitto_sub runs");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// A burstwatch process, its stdout and stderr read as they come.
pub struct Burstwatch {
    pub stdout: Lines,
    pub stderr: Lines,
    pub child: Child,
}

impl Burstwatch {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Burstwatch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
            .args(args)
            .envs(env.iter().copied())
            .env("BURSTWATCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("burstwatch starts");
        let stdout = Lines::read_from(child.stdout.take().unwrap());
        let stderr = Lines::read_from(child.stderr.take().unwrap());
        Burstwatch {
            stdout,
            stderr,
            child,
        }
    }

    /// `run --config CONFIG --duration SECONDS`.
    pub fn run_config(config: &Path, seconds: &str) -> Burstwatch {
        let config = config.to_str().unwrap();
        Self::start(&["run", "--config", config, "--duration", seconds], &[])
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit (at most `within`); its exit code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the readers take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s.code();
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!(
                    "burstwatch did not exit within {within:?}; stderr: {}",
                    self.stderr.all().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Burstwatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `path` (a config file for a test).
pub fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
