//! Webhooks against a real HTTP receiver in the test (127.0.0.1, a free port) that fails
//! its first three POSTs: every alert and outcome still arrives, once, in order, the same
//! bytes as on stdout, with the configured bearer token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::{write, Burstwatch};
use common::events::parse_line;

/// What the receiver saw: every POST (its Authorization header and body), and how it
/// answered.
#[derive(Default)]
struct Seen {
    posts: Vec<(Option<String>, String, u16)>,
}

/// A small HTTP/1.1 server (keep-alive, Content-Length bodies) answering 500 to the first
/// `fail_first` POSTs and 200 after.
fn receiver(fail_first: usize) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut length, mut auth) = (0usize, None);
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "authorization" => auth = Some(value.trim().to_owned()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let code = {
                        let mut s = seen.lock().unwrap();
                        let code = if s.posts.len() < fail_first { 500 } else { 200 };
                        assert!(request.starts_with("POST /hook "), "{request}");
                        s.posts.push((auth, String::from_utf8(body).unwrap(), code));
                        code
                    };
                    let reason = if code == 200 {
                        "OK"
                    } else {
                        "Internal Server Error"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n"
                    );
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn a_receiver_that_fails_three_posts_still_gets_every_alert_and_outcome_in_order() {
    let (port, seen) = receiver(3);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(
        &config,
        &format!(
            "[defaults]\nthreshold = 0.45\n\n\
             [[output.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             events = [\"alert\", \"outcome\"]\ntoken_env = \"HOOK_TOKEN\"\n\n\
             [[camera]]\nname = \"tank-a\"\nsource = \"sim:11\"\n\n\
             [[camera]]\nname = \"tank-b\"\nsource = \"sim:12\"\n"
        ),
    );
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "25",
        ],
        &[("HOOK_TOKEN", "t0ken")],
    );
    assert_eq!(bw.wait(Duration::from_secs(60)), Some(0));
    let wanted: Vec<String> = bw
        .stdout
        .all()
        .into_iter()
        .filter(|l| {
            let ty = parse_line(l)["type"].clone();
            ty == "alert" || ty == "outcome"
        })
        .collect();
    assert!(
        wanted.len() >= 4,
        "alerts in 25 s of two tanks: {}",
        wanted.len()
    );
    let until = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let s = seen.lock().unwrap();
        let taken = s.posts.iter().filter(|p| p.2 == 200).count();
        if taken >= wanted.len() || Instant::now() > until {
            break s.posts.clone();
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(50));
    };
    let taken: Vec<String> = seen
        .iter()
        .filter(|p| p.2 == 200)
        .map(|p| p.1.clone())
        .collect();
    assert_eq!(taken, wanted, "every alert and outcome, once, in order");
    assert_eq!(
        seen[0].1, wanted[0],
        "the failed POSTs were the first event, retried"
    );
    assert_eq!(seen.iter().filter(|p| p.2 == 500).count(), 3);
    assert!(seen.iter().all(|p| p.0.as_deref() == Some("Bearer t0ken")));
    let stderr = bw.stderr.all().join("\n");
    assert!(stderr.contains("the receiver answered 500"), "{stderr}");
    assert!(!stderr.contains("t0ken"), "the token never shows");
}
