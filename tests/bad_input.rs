//! Bad input to the science commands: each case is one line on stderr naming the file and
//! what was expected, exit code 2, and no panic.

mod common;

use std::path::{Path, PathBuf};

use burstwatch::io::npy;
use common::*;

/// A .npy file with an arbitrary `descr` and raw payload.
fn raw_npy(path: &Path, descr: &str, shape: &str, payload: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

fn good_series(len: usize) -> Vec<f64> {
    let y = npy::read_series(&seed("test/Y_tilde.npy")).unwrap();
    y[..len].to_vec()
}

fn write_series(dir: &Path, name: &str, v: &[f64]) -> PathBuf {
    let p = dir.join(name);
    npy::write(&p, v, &[v.len()]).unwrap();
    p
}

fn eval_with_ytilde(p: &Path) -> std::process::Output {
    burstwatch(&["eval", "--ytilde", s(p)])
}

#[test]
fn missing_file() {
    let out = eval_with_ytilde(Path::new("/nonexistent/Y.npy"));
    assert_one_line_error(&out, &["/nonexistent/Y.npy", "cannot read"]);
    let out = burstwatch(&[
        "label",
        "--ytilde",
        "/nonexistent/Y.npy",
        "--out",
        "/tmp/x.npy",
    ]);
    assert_one_line_error(&out, &["/nonexistent/Y.npy"]);
}

#[test]
fn not_a_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Y.npy");
    std::fs::write(&p, "time,speed\n0,0.1\n").unwrap();
    assert_one_line_error(
        &eval_with_ytilde(&p),
        &[s(&p), "not a .npy file", "expected"],
    );
}

#[test]
fn truncated_npy() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_series(dir.path(), "Y.npy", &good_series(300));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    assert_one_line_error(&eval_with_ytilde(&p), &[s(&p), "truncated"]);
}

#[test]
fn complex_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Y.npy");
    raw_npy(&p, "<c16", "(200,)", &[0u8; 200 * 16]);
    assert_one_line_error(
        &eval_with_ytilde(&p),
        &[s(&p), "complex", "expected a real dtype"],
    );
}

#[test]
fn string_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Y.npy");
    raw_npy(&p, "<U8", "(200,)", &[0u8; 200 * 32]);
    assert_one_line_error(
        &eval_with_ytilde(&p),
        &[s(&p), "string", "expected a real dtype"],
    );
}

#[test]
fn more_than_one_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Y.npy");
    let v = good_series(400);
    npy::write(&p, &v, &[200, 2]).unwrap();
    assert_one_line_error(&eval_with_ytilde(&p), &[s(&p), "2 columns", "(T,)"]);
}

#[test]
fn nan_and_infinity() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bad) in [("nan.npy", f64::NAN), ("inf.npy", f64::INFINITY)] {
        let mut v = good_series(300);
        v[150] = bad;
        let p = write_series(dir.path(), name, &v);
        assert_one_line_error(&eval_with_ytilde(&p), &[s(&p), "index 150", "finite"]);
    }
    // A prediction with NaN inside the evaluated frames.
    let y = write_series(dir.path(), "Y.npy", &good_series(300));
    let mut pred = vec![0.5; 300];
    pred[200] = f64::NAN;
    let p = write_series(dir.path(), "P.npy", &pred);
    let out = burstwatch(&["eval", "--ytilde", s(&y), "--pred", &format!("m={}", s(&p))]);
    assert_one_line_error(&out, &[s(&p), "frame 200", "finite"]);
}

#[test]
fn length_mismatch_between_series() {
    let dir = tempfile::tempdir().unwrap();
    let y = write_series(dir.path(), "Y.npy", &good_series(300));
    let l = write_series(dir.path(), "L.npy", &[0.0; 299]);
    let out = burstwatch(&["eval", "--ytilde", s(&y), "--labels", s(&l)]);
    assert_one_line_error(&out, &[s(&l), "299 labels", "expected 300"]);
    let p = write_series(dir.path(), "P.npy", &[0.5; 250]);
    let out = burstwatch(&["eval", "--ytilde", s(&y), "--pred", &format!("m={}", s(&p))]);
    assert_one_line_error(&out, &[s(&p), "250 values", "expected 300"]);
}

#[test]
fn labels_that_are_not_zero_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let y = write_series(dir.path(), "Y.npy", &good_series(300));
    let mut lv = vec![0.0; 300];
    lv[7] = 0.5;
    let l = write_series(dir.path(), "L.npy", &lv);
    let out = burstwatch(&["eval", "--ytilde", s(&y), "--labels", s(&l)]);
    assert_one_line_error(&out, &[s(&l), "frame 7", "0 or 1"]);
}

#[test]
fn series_shorter_than_166_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_series(dir.path(), "Y.npy", &good_series(165));
    assert_one_line_error(
        &eval_with_ytilde(&p),
        &[s(&p), "165 frames", "at least 166"],
    );
    let out = burstwatch(&["baseline", "--ytilde", s(&p), "--out", "/tmp/unused.npy"]);
    assert_one_line_error(&out, &[s(&p), "at least 166"]);
    // 166 frames is enough.
    let ok = write_series(dir.path(), "Y166.npy", &good_series(166));
    let out = burstwatch(&[
        "baseline",
        "--ytilde",
        s(&ok),
        "--out",
        s(&dir.path().join("B.npy")),
    ]);
    assert_ok(&out);
}

#[test]
fn a_malformed_pred_argument() {
    let dir = tempfile::tempdir().unwrap();
    let y = write_series(dir.path(), "Y.npy", &good_series(300));
    let out = burstwatch(&["eval", "--ytilde", s(&y), "--pred", "just-a-file.npy"]);
    assert_one_line_error(&out, &["just-a-file.npy", "NAME=FILE"]);
}

fn write_png(path: &Path, w: u32, h: u32) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer
        .write_image_data(&vec![7u8; (w * h) as usize])
        .unwrap();
}

#[test]
fn empty_png_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "no frames here").unwrap();
    let out = burstwatch(&[
        "speed",
        "--frames",
        s(dir.path()),
        "--out",
        "/tmp/unused.npy",
    ]);
    assert_one_line_error(&out, &[s(dir.path()), "no .png files", "expected"]);
}

#[test]
fn pngs_of_different_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("00000.png"), 320, 240);
    write_png(&dir.path().join("00001.png"), 320, 240);
    let odd = dir.path().join("00002.png");
    write_png(&odd, 160, 120);
    let out = burstwatch(&[
        "speed",
        "--frames",
        s(dir.path()),
        "--out",
        "/tmp/unused.npy",
    ]);
    assert_one_line_error(&out, &[s(&odd), "160x120", "expected 320x240"]);
}

#[test]
fn a_corrupt_png() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("00000.png"), 32, 24);
    let bad = dir.path().join("00001.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let out = burstwatch(&[
        "speed",
        "--frames",
        s(dir.path()),
        "--out",
        "/tmp/unused.npy",
    ]);
    assert_one_line_error(&out, &[s(&bad), "PNG"]);
}

#[test]
fn frames_npy_of_the_wrong_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("frames.npy");
    npy::write(&p, &[0.0f32; 2 * 4 * 4], &[2, 4, 4]).unwrap();
    let out = burstwatch(&["speed", "--frames", s(&p), "--out", "/tmp/unused.npy"]);
    assert_one_line_error(&out, &[s(&p), "expected uint8 frames"]);
}

#[test]
fn unwritable_output() {
    let out = burstwatch(&[
        "label",
        "--ytilde",
        s(&seed("test/Y_tilde.npy")),
        "--out",
        "/nonexistent-dir/L.npy",
    ]);
    assert_one_line_error(&out, &["/nonexistent-dir/L.npy", "cannot write"]);
}

#[test]
fn any_real_dtype_and_shape_t_1_are_accepted() {
    // int16 y~ values and a (T, 1) bool label series are fine.
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("Y.npy");
    let vals: Vec<u8> = (0..300i16).flat_map(|i| (i % 7).to_le_bytes()).collect();
    raw_npy(&y, "<i2", "(300,)", &vals);
    let l = dir.path().join("L.npy");
    let lv: Vec<u8> = (0..300).map(|i| (i % 3 == 0) as u8).collect();
    raw_npy(&l, "|b1", "(300, 1)", &lv);
    assert_ok(&burstwatch(&["eval", "--ytilde", s(&y), "--labels", s(&l)]));
}

/// The most memory a finished child used (its peak resident set), in bytes.
fn peak_rss(child: std::process::Child) -> (std::process::ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waiting for our own child, with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4");
    let status = std::process::ExitStatus::from_raw(status);
    (status, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_big_frame_stack_is_read_once_not_copied() {
    // 2000 frames of 240x320: 154 MB. Reading it whole, then copying it, peaked at twice that.
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.npy");
    let (t, n) = (2000usize, 240 * 320);
    // Written a frame at a time: the child's peak counts this process's memory at the fork.
    raw_npy(&frames, "|u1", &format!("({t}, 240, 320)"), &[]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&frames)
        .unwrap();
    for k in 0..t {
        std::io::Write::write_all(&mut file, &vec![(k % 200) as u8; n]).unwrap();
    }
    drop(file);
    let size = std::fs::metadata(&frames).unwrap().len();
    let out = dir.path().join("y.npy");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(["speed", "--frames", s(&frames), "--out", s(&out)])
        .env("BURSTWATCH_LOG", "warn")
        .spawn()
        .unwrap();
    let (status, peak) = peak_rss(child);
    assert!(status.success());
    assert_eq!(npy::read_series(&out).unwrap().len(), t);
    let ratio = peak as f64 / size as f64;
    assert!(
        ratio < 1.3,
        "peak {peak} bytes for a {size}-byte file ({ratio:.2}x)"
    );
}
