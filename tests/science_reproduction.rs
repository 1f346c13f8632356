//! The study's science reproduced from its own data (DESIGN §1, issue "Foundation"):
//! labels, baseline, streaming = batch, the evaluation table, and the speed proxy.

mod common;

use burstwatch::io::{npy, read_frames};
use burstwatch::speed::{
    baseline, label_bursts, speed_proxy_series, Baseline, Labeller, STUDY_BASELINE, STUDY_LABELS,
};
use common::*;

fn series(rel: &str) -> Vec<f64> {
    npy::read_series(&seed(rel)).unwrap()
}

#[test]
fn labels_reproduce_the_study_exactly() {
    for part in ["test", "validation"] {
        let y = series(&format!("{part}/Y_tilde.npy"));
        let want = series(&format!("{part}/Y_label.npy"));
        let got = label_bursts(&y, &STUDY_LABELS);
        let mismatches = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| (**g as u8 as f64) != **w)
            .count();
        assert_eq!(mismatches, 0, "{part}: label mismatches");
        assert!(want.iter().filter(|&&w| w == 1.0).count() > 100);
    }
}

#[test]
fn label_command_writes_the_study_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("L.npy");
    assert_ok(&burstwatch(&[
        "label",
        "--ytilde",
        s(&seed("validation/Y_tilde.npy")),
        "--out",
        s(&out),
    ]));
    assert_eq!(
        npy::read_series(&out).unwrap(),
        series("validation/Y_label.npy")
    );
}

#[test]
fn baseline_reproduces_the_study_to_1e_12() {
    let y = series("test/Y_tilde.npy");
    let want = series("test/Y_pred_baseline.npy");
    let got = baseline(&y, &STUDY_BASELINE);
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1e-12, "max |difference| {err}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("B.npy");
    assert_ok(&burstwatch(&[
        "baseline",
        "--ytilde",
        s(&seed("test/Y_tilde.npy")),
        "--out",
        s(&out),
    ]));
    assert_eq!(npy::read_series(&out).unwrap(), got);
}

#[test]
fn streaming_equals_batch_on_every_series() {
    let golden = shared().join("golden/seq11/y_tilde.npy");
    let all = [
        series("test/Y_tilde.npy"),
        series("validation/Y_tilde.npy"),
        npy::read_series(&golden).unwrap(),
    ];
    for y in &all {
        let t_len = y.len();
        let batch_p = baseline(y, &STUDY_BASELINE);
        let batch_l = label_bursts(y, &STUDY_LABELS);
        let mut online_p = Baseline::new(STUDY_BASELINE);
        let mut online_l = Labeller::new(STUDY_LABELS);
        let (mut n_p, mut n_l) = (0, 0);
        for t in 1..t_len {
            // Frame t arrives: y~[t-1] is now known.
            if let Some(p) = online_p.push(y[t - 1]) {
                if t <= t_len - 12 {
                    assert!((p - batch_p[t]).abs() <= 1e-12, "baseline frame {t}");
                    n_p += 1;
                }
            }
            if let Some((f, l)) = online_l.push(y[t - 1]) {
                assert_eq!(l, batch_l[f], "label frame {f}");
                n_l += 1;
            }
        }
        assert_eq!(n_p, t_len - 12 - 119 + 1);
        assert_eq!(n_l, t_len - 47 - 119 + 1);
    }
}

#[test]
fn eval_reproduces_the_design_table() {
    let out = assert_ok(&burstwatch(&[
        "eval",
        "--ytilde",
        s(&seed("test/Y_tilde.npy")),
        "--labels",
        s(&seed("test/Y_label.npy")),
        "--pred",
        &format!("convlstm={}", s(&seed("test/Y_pred.npy"))),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["convlstm", "baseline", "fused"]);
    let close = |name: &str, field: &str, want: f64, digits: i32| {
        let got = v[name][field].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.5 * 10f64.powi(-digits),
            "{name}.{field}: {got} vs {want}"
        );
    };
    // DESIGN §1, computed by scikit-learn 1.9 on the study's data.
    close("convlstm", "auc", 0.8300, 4);
    close("convlstm", "max_accuracy", 0.8472, 4);
    close("convlstm", "r_acc", 0.801, 3);
    close("convlstm", "youden_j", 0.5194, 4);
    close("convlstm", "r_j", 0.308, 3);
    close("convlstm", "tpr_at_r_j", 0.830, 3);
    close("convlstm", "fpr_at_r_j", 0.310, 3);
    close("baseline", "auc", 0.8378, 4);
    close("baseline", "max_accuracy", 0.8543, 4);
    close("baseline", "r_acc", 0.988, 3);
    close("baseline", "youden_j", 0.5434, 4);
    close("baseline", "r_j", 0.604, 3);
    close("baseline", "tpr_at_r_j", 0.832, 3);
    close("baseline", "fpr_at_r_j", 0.289, 3);
    close("fused", "auc", 0.8503, 4);
}

#[test]
fn eval_without_labels_computes_them_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("fig.png");
    let out = assert_ok(&burstwatch(&[
        "eval",
        "--ytilde",
        s(&seed("test/Y_tilde.npy")),
        "--pred",
        &format!("convlstm={}", s(&seed("test/Y_pred.npy"))),
        "--plot",
        s(&png),
    ]));
    // Labels recomputed from y~ equal the study's, so the table is the same.
    assert!(out.contains("convlstm      0.8300"), "{out}");
    assert!(out.contains("baseline      0.8378"), "{out}");
    let header = std::fs::read(&png).unwrap();
    assert_eq!(&header[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn frame_indexed_predictions_equal_cropped_ones() {
    // A length-T series (NaN before frame 119, as `predict` writes) evaluates the same as
    // the study's short series starting at frame 119.
    let y = series("test/Y_tilde.npy");
    let short = npy::read(&seed("test/Y_pred.npy")).unwrap().to_f32();
    let mut full = vec![f32::NAN; y.len()];
    full[119..119 + short.len()].copy_from_slice(&short);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("P.npy");
    npy::write(&p, &full, &[full.len()]).unwrap();
    let run = |pred: &str| {
        assert_ok(&burstwatch(&[
            "eval",
            "--ytilde",
            s(&seed("test/Y_tilde.npy")),
            "--pred",
            &format!("m={pred}"),
            "--json",
        ]))
    };
    assert_eq!(run(s(&p)), run(s(&seed("test/Y_pred.npy"))));
}

/// Decodes a grayscale PNG independently of the library.
fn decode_png(path: &std::path::Path) -> Vec<u8> {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    buf
}

#[test]
fn speed_proxy_of_the_sample_frames_equals_float64() {
    let dir = seed("sample-frames");
    let frames: Vec<Vec<u8>> = (0..10)
        .map(|i| decode_png(&dir.join(format!("{i:05}.png"))))
        .collect();
    let mut want: Vec<f64> = frames
        .windows(2)
        .map(|w| {
            let sum: f64 = w[0]
                .iter()
                .zip(&w[1])
                .map(|(&a, &b)| (b as f64 / 255.0 - a as f64 / 255.0).abs())
                .sum();
            sum / (240.0 * 320.0)
        })
        .collect();
    want.push(0.0);

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("Y.npy");
    assert_ok(&burstwatch(&[
        "speed",
        "--frames",
        s(&dir),
        "--out",
        s(&out),
    ]));
    let got = npy::read_series(&out).unwrap();
    assert_eq!(got.len(), 10);
    for (t, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-9, "frame {t}: {g} vs {w}");
    }
    assert!(got[1] > 0.0, "consecutive sample frames differ");
}

#[test]
fn speed_proxy_of_the_golden_frames_equals_the_oracle() {
    let dir = shared().join("golden/seq11");
    let frames = read_frames(&dir.join("frames.npy")).unwrap();
    let got = speed_proxy_series(&frames);
    let want = npy::read_series(&dir.join("y_tilde.npy")).unwrap();
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1e-9, "max |difference| {err}");
}
