//! Alerts and outcomes of a live run on a recorded sequence equal what the batch baseline,
//! the batch labels and the batch twin of the alert machine give on the same frames' y~.

mod common;

use burstwatch::alert::{alerts_in_series, AlertRule};
use burstwatch::io::npy;
use burstwatch::speed::{baseline, label_bursts, FIRST_FRAME, STUDY_BASELINE, STUDY_LABELS};
use common::events::{final_stats, of_type, parse_all};
use common::*;

#[test]
fn live_alerts_and_outcomes_equal_the_batch_computation() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("tank.mkv");
    record_sim(&video, 60, 5);
    // Batch: y~ of the decoded frames, then the study's baseline and labels.
    let ytilde = dir.path().join("Y.npy");
    assert_ok(&burstwatch(&[
        "speed",
        "--source",
        s(&video),
        "--out",
        s(&ytilde),
    ]));
    let y = npy::read_series(&ytilde).unwrap();
    let t_len = y.len();
    assert_eq!(t_len, 1800, "60 s at 30 fps");
    let p = baseline(&y, &STUDY_BASELINE);
    let labels = label_bursts(&y, &STUDY_LABELS);
    let last_scored = t_len - 12;
    let scores: Vec<Option<f64>> = (0..t_len)
        .map(|t| (FIRST_FRAME..=last_scored).contains(&t).then_some(p[t]))
        .collect();
    let threshold = 0.604;
    let want_alerts = alerts_in_series(&scores, AlertRule::new(threshold));
    assert!(
        want_alerts.len() >= 5,
        "the sequence has bursts: {want_alerts:?}"
    );

    // Live.
    let out = assert_ok(&burstwatch(&[
        "run",
        "--source",
        s(&video),
        "--model",
        "none",
        "--fast",
        "--score",
        "baseline",
        "--emit",
        "all",
    ]));
    let events = parse_all(&out);
    assert_eq!(final_stats(&events, s(&video))["frames"], 1800);
    for pred in of_type(&events, "prediction") {
        let t = pred["frame"].as_u64().unwrap() as usize;
        if t >= 1 {
            let live_y = pred["y_tilde"].as_f64().unwrap();
            assert!((live_y - y[t - 1]).abs() < 1e-15, "y~ at frame {t}");
        }
        if (FIRST_FRAME..=last_scored).contains(&t) {
            let live_p = pred["p_baseline"].as_f64().unwrap();
            assert!((live_p - p[t]).abs() <= 1e-12, "baseline at frame {t}");
        }
    }
    let got_alerts: Vec<u64> = of_type(&events, "alert")
        .iter()
        .map(|a| a["frame"].as_u64().unwrap())
        .filter(|&f| f as usize <= last_scored)
        .collect();
    assert_eq!(got_alerts, want_alerts);
    for a in of_type(&events, "alert") {
        assert_eq!(a["threshold"], threshold);
        assert!(a["score"].as_f64().unwrap() >= threshold);
    }
    let outcomes = of_type(&events, "outcome");
    let want_outcomes: Vec<(u64, bool)> = want_alerts
        .iter()
        .filter(|&&f| f as usize <= t_len - 47)
        .map(|&f| (f, labels[f as usize]))
        .collect();
    let got_outcomes: Vec<(u64, bool)> = outcomes
        .iter()
        .map(|o| (o["frame"].as_u64().unwrap(), o["burst"].as_bool().unwrap()))
        .collect();
    assert_eq!(got_outcomes, want_outcomes);
}
