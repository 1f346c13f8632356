//! The figures the README states for the default model (section "The default model"):
//! `eval --sim 3 --seconds 600` (the held-out simulated tank, 10 minutes, never seen in
//! training or validation; the same figures as `eval --video --truth` of its recording)
//! reproduces them, ROC-AUCs and the evaluation by events
//! alike. If the embedded model changes, this test says the README must change with it.

mod common;

use common::*;

/// README, "The default model": ROC-AUC of the default model, the baseline and their mean
/// on `sim --seconds 600 --seed 3`, continuous mode.
const README_AUC: [(&str, f64); 3] = [
    ("MODEL", 0.85866),
    ("baseline", 0.76811),
    ("fused", 0.86398),
];

/// README, "The default model", by events (warn window 3 s): recall, median lead time
/// (s) and false alarms per hour of the model, the baseline and the fused score.
const README_EVENTS: [(&str, f64, f64, f64); 3] = [
    ("MODEL", 146.0 / 149.0, 1.87, 471.4),
    ("baseline", 146.0 / 149.0, 2.05, 604.4),
    ("fused", 144.0 / 149.0, 1.98, 507.7),
];

#[test]
fn eval_reproduces_the_readme_figures_of_the_default_model() {
    // The simulator rendered straight into the model: the very figures its recording and
    // truth file give (tests/eval_events.rs checks that equality), without spending CI's
    // time on encoding and decoding 10 minutes of video.
    let out = burstwatch(&[
        "eval",
        "--sim",
        "3",
        "--seconds",
        "600",
        "--device",
        "cpu",
        "--json",
    ]);
    let report = assert_json_object(&out);
    let name = burstwatch::model::default::default_model().name;
    let auc = |key: &str| {
        report[key]["auc"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {report:?}"))
    };
    for (key, want) in README_AUC {
        let key = if key == "MODEL" { name.as_str() } else { key };
        let got = auc(key);
        assert!(
            (got - want).abs() < 5e-5,
            "{key}: ROC-AUC {got:.5}, README says {want:.4}"
        );
    }
    for (key, recall, lead, fah) in README_EVENTS {
        let key = if key == "MODEL" { name.as_str() } else { key };
        let e = &report[key]["events"];
        let got = (
            e["recall"].as_f64().unwrap(),
            e["lead_median_s"].as_f64().unwrap(),
            e["false_alarms_per_hour"].as_f64().unwrap(),
        );
        assert!(
            (got.0 - recall).abs() < 5e-4
                && (got.1 - lead).abs() < 5e-3
                && (got.2 - fah).abs() < 0.05,
            "{key}: recall, lead, FA/h {got:?}, README says {:?}",
            (recall, lead, fah)
        );
        assert_eq!(report[key]["events_curve"].as_array().unwrap().len(), 19);
    }
    // Issue 7's acceptance: on a video no step of training saw, the model alone beats
    // the speed-proxy baseline by at least 0.03 (it sees the displays before chases).
    assert!(
        auc(&name) >= auc("baseline") + 0.03,
        "model {:.4} vs baseline {:.4}",
        auc(&name),
        auc("baseline")
    );
}
