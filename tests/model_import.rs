//! Importing the study's Keras SavedModels, storing models as safetensors, and refusing bad
//! model input with one line and exit code 2. The study's files are read from `../shared`.

use std::path::{Path, PathBuf};
use std::process::Command;

use burstwatch::io::npy::read_npz;
use burstwatch::model::{self, keras, weights, BatchNorm, ConvLstm, Dense, Model, Stage};

const UPBEAT: &str = "upbeat-snowflake-91";
const VISIONARY: &str = "visionary-serenity";

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn saved_model(name: &str) -> PathBuf {
    shared().join("models").join(name)
}

fn import(name: &str) -> Model {
    keras::import(&saved_model(name)).unwrap()
}

/// The Model's vector for each checkpoint name of the reference npz (DESIGN §1; the npz
/// keys are the checkpoint keys without `/.ATTRIBUTES/VARIABLE_VALUE`).
fn by_checkpoint_name<'a>(name: &str, m: &'a Model) -> Vec<(&'static str, &'a [f32])> {
    let s0 = &m.stages[0];
    let n0 = s0.norm.as_ref().unwrap();
    let bias = std::slice::from_ref(&m.head.bias);
    match name {
        UPBEAT => vec![
            ("trainable_variables/0", &s0.lstm.kernel[..]),
            ("trainable_variables/1", &s0.lstm.recurrent[..]),
            ("layer_with_weights-1/moving_mean", &n0.mean[..]),
            ("layer_with_weights-1/moving_variance", &n0.variance[..]),
            ("layer_with_weights-2/kernel", &m.head.weights[..]),
            ("layer_with_weights-2/bias", bias),
        ],
        VISIONARY => {
            let s1 = &m.stages[1];
            vec![
                ("variables/0", &s0.lstm.kernel[..]),
                ("variables/1", &s0.lstm.recurrent[..]),
                ("variables/2", &n0.mean[..]),
                ("variables/3", &n0.variance[..]),
                ("variables/4", &s1.lstm.kernel[..]),
                ("variables/5", &s1.lstm.recurrent[..]),
                ("layer_with_weights-3/kernel", &m.head.weights[..]),
                ("layer_with_weights-3/bias", bias),
            ]
        }
        _ => unreachable!(),
    }
}

fn assert_matches_reference(name: &str) {
    let m = import(name);
    let reference =
        read_npz(&shared().join(format!("models/{name}.reference-weights.npz"))).unwrap();
    let mapping = by_checkpoint_name(name, &m);
    assert_eq!(
        reference.len(),
        mapping.len(),
        "{name}: every reference tensor is mapped"
    );
    for (key, ours) in mapping {
        let (_, arr) = reference
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{name}: {key} not in the reference npz"));
        let theirs = arr.to_f32();
        assert_eq!(theirs.len(), ours.len(), "{name} {key}: length");
        let differ = theirs
            .iter()
            .zip(ours)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{name} {key}: {differ} values differ in their bits"
        );
    }
}

#[test]
fn upbeat_weights_equal_the_reference_bit_for_bit() {
    assert_matches_reference(UPBEAT);
}

#[test]
fn visionary_weights_equal_the_reference_bit_for_bit() {
    assert_matches_reference(VISIONARY);
}

#[test]
fn upbeat_architecture_is_the_studys() {
    let m = import(UPBEAT);
    assert_eq!(m.name, UPBEAT);
    assert_eq!(m.input, model::STUDY_INPUT);
    assert_eq!(m.stages.len(), 1);
    let s = &m.stages[0];
    assert_eq!((s.lstm.filters, s.lstm.in_channels, s.pool), (16, 4, false));
    let n = s.norm.as_ref().unwrap();
    assert_eq!(n.epsilon, 0.001f32);
    assert!(n.gamma.is_none() && n.beta.is_none());
    assert_eq!(m.head.weights.len(), 16);
    assert_eq!(m.parameter_count(), 11_569); // "11.5k parameters" (DESIGN §1)
    assert_eq!(m.macs_per_step(), 214_778_880); // "215 M multiply-adds per time step"
}

#[test]
fn visionary_architecture_is_the_studys() {
    let m = import(VISIONARY);
    assert_eq!(m.name, VISIONARY);
    assert_eq!(m.input, model::STUDY_INPUT);
    assert_eq!(m.stages.len(), 2);
    let (s0, s1) = (&m.stages[0], &m.stages[1]);
    assert_eq!(
        (s0.lstm.filters, s0.lstm.in_channels, s0.pool),
        (16, 4, true)
    );
    let n = s0.norm.as_ref().unwrap();
    assert_eq!(n.epsilon, 0.001f32);
    assert!(n.gamma.is_none() && n.beta.is_none());
    assert_eq!(
        (s1.lstm.filters, s1.lstm.in_channels, s1.pool),
        (32, 16, false)
    );
    assert!(s1.norm.is_none());
    assert_eq!(m.head.weights.len(), 32);
    assert_eq!(m.stage_maps(), vec![(118, 158), (57, 77)]);
}

#[test]
fn import_save_load_gives_an_identical_model() {
    let dir = tempfile::tempdir().unwrap();
    for name in [UPBEAT, VISIONARY] {
        let imported = import(name);
        let file = dir.path().join(format!("{name}.safetensors"));
        weights::save(&imported, &file).unwrap();
        let loaded = weights::load(&file).unwrap();
        assert_eq!(loaded, imported, "{name}");
        // `model::load` dispatches on the path kind.
        assert_eq!(model::load(&file).unwrap(), imported);
        assert_eq!(model::load(&saved_model(name)).unwrap(), imported);
    }
}

/// A model using what the study's do not: scale and centre, a pool after the last stage,
/// a non-square input.
fn exotic_model() -> Model {
    let ramp = |n: usize, scale: f32| {
        (0..n)
            .map(|i| (i as f32 * 0.37).sin() * scale)
            .collect::<Vec<f32>>()
    };
    Model {
        name: "exotic".into(),
        input: model::InputShape {
            slices: 5,
            height: 21,
            width: 13,
            channels: 2,
        },
        stages: vec![
            Stage {
                lstm: ConvLstm {
                    filters: 3,
                    in_channels: 2,
                    kernel: ramp(9 * 2 * 12, 0.1),
                    recurrent: ramp(9 * 3 * 12, 0.2),
                },
                pool: true,
                norm: Some(BatchNorm {
                    mean: ramp(3, 0.01),
                    variance: vec![0.5, 1e-6, 2.0],
                    epsilon: 1e-5,
                    gamma: Some(vec![1.5, -0.5, 1.0]),
                    beta: Some(vec![0.1, 0.0, -0.2]),
                }),
            },
            Stage {
                lstm: ConvLstm {
                    filters: 2,
                    in_channels: 3,
                    kernel: ramp(9 * 3 * 8, 0.3),
                    recurrent: ramp(9 * 2 * 8, 0.4),
                },
                pool: true,
                norm: None,
            },
        ],
        head: Dense {
            weights: vec![0.25, -1.0],
            bias: -0.125,
        },
        thresholds: None,
        trained: None,
    }
}

#[test]
fn safetensors_round_trip_of_scale_centre_and_last_pool() {
    let m = exotic_model();
    let bytes = weights::to_bytes(&m).unwrap();
    assert_eq!(weights::from_bytes(&bytes).unwrap(), m);
}

#[test]
fn safetensors_round_trip_of_thresholds_and_provenance() {
    let mut m = exotic_model();
    m.thresholds = Some(model::AlertThresholds {
        model: 0.25,
        fused: 0.5,
    });
    m.trained = Some("burstwatch train, 3 epochs on sim seeds 1-3".into());
    let bytes = weights::to_bytes(&m).unwrap();
    assert_eq!(weights::from_bytes(&bytes).unwrap(), m);
    // Without them, none come back.
    let plain = weights::to_bytes(&exotic_model()).unwrap();
    let back = weights::from_bytes(&plain).unwrap();
    assert_eq!((back.thresholds, back.trained), (None, None));
    // A threshold of 0 or 1 alerts always or never: not saved.
    m.thresholds = Some(model::AlertThresholds {
        model: 1.0,
        fused: 0.5,
    });
    assert!(weights::to_bytes(&m)
        .unwrap_err()
        .contains("alert threshold"));
}

#[test]
fn invalid_models_are_not_saved() {
    let mut m = exotic_model();
    m.stages[1].lstm.in_channels = 4;
    assert!(weights::to_bytes(&m)
        .unwrap_err()
        .contains("input channels"));
    let mut m = exotic_model();
    m.input.height = 4; // 4 -> 2 after the first stage: the second's 3x3 kernel cannot fit
    assert!(weights::to_bytes(&m).is_err());
}

// ---- Keras settings, refused by name (library level, edits of the real saved_model.pb) ----

/// The upbeat saved_model.pb with every occurrence of `from` replaced by `to` (same length,
/// so the protocol buffer stays well-formed).
fn edited_pb(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "edits must keep the length");
    let mut pb = std::fs::read(saved_model(UPBEAT).join("saved_model.pb")).unwrap();
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= pb.len() {
        if &pb[i..i + from.len()] == from {
            pb[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "{} not found", String::from_utf8_lossy(from));
    pb
}

#[test]
fn unsupported_keras_settings_are_refused_naming_layer_and_setting() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "\"recurrent_activation\": \"hard_sigmoid\"",
            "\"recurrent_activation\": \"sigmoid\"     ",
            &[
                "layer convLSTM_1 (ConvLSTM2D)",
                "recurrent_activation=\"sigmoid\"",
                "hard_sigmoid",
            ],
        ),
        (
            "\"use_bias\": false",
            "\"use_bias\": true ",
            &["layer convLSTM_1", "use_bias=true"],
        ),
        (
            "\"padding\": \"valid\"",
            "\"padding\": \"same\" ",
            &["layer convLSTM_1", "padding=\"same\""],
        ),
        (
            "\"items\": [3, 3]",
            "\"items\": [5, 5]",
            &["layer convLSTM_1", "kernel_size=[5,5]"],
        ),
        (
            "\"items\": [1, 1]",
            "\"items\": [2, 2]",
            &["layer convLSTM_1", "strides=[2,2]"],
        ),
        (
            "\"activation\": \"tanh\"",
            "\"activation\": \"relu\"",
            &["layer convLSTM_1", "activation=\"relu\""],
        ),
        (
            "\"data_format\": \"channels_last\"",
            "\"data_format\":\"channels_first\"",
            &["layer convLSTM_1", "data_format=\"channels_first\""],
        ),
        (
            "\"go_backwards\": false",
            "\"go_backwards\": true ",
            &["layer convLSTM_1", "go_backwards=true"],
        ),
        (
            "\"stateful\": false",
            "\"stateful\": true ",
            &["layer convLSTM_1", "stateful=true"],
        ),
        (
            "\"axis\": [3]",
            "\"axis\": [1]",
            &["layer batchnorm_1 (BatchNormalization)", "axis=1"],
        ),
        (
            "\"BatchNormalization\"",
            "\"LayerNormalization\"",
            &[
                "layer batchnorm_1 (LayerNormalization)",
                "unknown layer class LayerNormalization",
            ],
        ),
        (
            "\"units\": 1,",
            "\"units\": 2,",
            &["layer dense (Dense)", "units=2"],
        ),
    ];
    for (from, to, needles) in cases {
        let err = keras::parse_saved_model(&edited_pb(from, to)).unwrap_err();
        for n in *needles {
            assert!(err.contains(n), "edit {to}: {err:?} lacks {n:?}");
        }
        assert!(!err.contains('\n'));
    }
}

#[test]
fn batch_norm_scale_and_centre_need_gamma_and_beta() {
    // Supported, so the importer looks for the variables (which this file lacks).
    let err =
        keras::parse_saved_model(&edited_pb("\"center\": false", "\"center\": true ")).unwrap_err();
    assert!(
        err.contains("layer batchnorm_1 beta") && err.contains("no variable"),
        "{err}"
    );
}

#[test]
fn saved_model_parser_gives_the_variable_paths() {
    let pb = std::fs::read(saved_model(VISIONARY).join("saved_model.pb")).unwrap();
    let info = keras::parse_saved_model(&pb).unwrap();
    let paths: Vec<String> = info.variables().iter().map(|v| v.path.join("/")).collect();
    assert_eq!(
        paths,
        [
            "layer-1/cell/kernel",
            "layer-1/cell/recurrent_kernel",
            "layer-3/layer/moving_mean",
            "layer-3/layer/moving_variance",
            "layer-4/cell/kernel",
            "layer-4/cell/recurrent_kernel",
            "layer-6/kernel",
            "layer-6/bias",
        ]
    );
}

// ---- the command line ----

fn burstwatch(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(args)
        .env("BURSTWATCH_LOG", "info")
        .output()
        .unwrap()
}

/// Runs the binary and checks the failure contract: exit code 2, one line on stderr that
/// names `names` and contains `says`, no panic.
fn assert_refused(args: &[&std::ffi::OsStr], names: &Path, says: &str) {
    let out = burstwatch(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&names.display().to_string()),
        "stderr does not name {}: {stderr}",
        names.display()
    );
    assert!(stderr.contains(says), "stderr lacks {says:?}: {stderr}");
}

fn inspect(model: &Path) -> Vec<&std::ffi::OsStr> {
    vec!["inspect".as_ref(), "--model".as_ref(), model.as_os_str()]
}

fn import_args<'a>(dir: &'a Path, out: &'a Path) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "import".as_ref(),
        "--keras".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]
}

/// A copy of a study SavedModel in `tmp`, for damaging.
fn copy_saved_model(name: &str, tmp: &Path) -> PathBuf {
    let to = tmp.join(name);
    std::fs::create_dir_all(to.join("variables")).unwrap();
    let from = saved_model(name);
    std::fs::copy(from.join("saved_model.pb"), to.join("saved_model.pb")).unwrap();
    for f in ["variables.index", "variables.data-00000-of-00001"] {
        std::fs::copy(from.join("variables").join(f), to.join("variables").join(f)).unwrap();
    }
    to
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

/// A valid model file of the upbeat network.
fn upbeat_file(tmp: &Path) -> (PathBuf, Vec<u8>) {
    let path = tmp.join("upbeat.safetensors");
    weights::save(&import(UPBEAT), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// Rewrites a safetensors header (JSON) and keeps the data.
fn rewrite_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn cli_import_writes_a_model_and_logs_one_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.safetensors");
    let run = burstwatch(&import_args(&saved_model(UPBEAT), &out));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "imported upbeat-snowflake-91: 1 ConvLSTM stage(s), filters 16, 11569 parameters"
        ),
        "{stderr}"
    );
    assert_eq!(weights::load(&out).unwrap(), import(UPBEAT));

    let run = burstwatch(&inspect(&out));
    assert_eq!(run.status.code(), Some(0));
    let line: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(line["type"], "model");
    assert_eq!(line["parameters"], 11569);
}

#[test]
fn cli_refuses_a_truncated_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes) = upbeat_file(tmp.path());
    for keep in [bytes.len() - 100, 200, 5] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        assert_refused(&inspect(&path), &path, "not a valid safetensors file");
    }
}

#[test]
fn cli_refuses_corrupt_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes) = upbeat_file(tmp.path());
    // Random bytes (a fixed LCG, so the test is reproducible).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect();
    std::fs::write(&path, &random).unwrap();
    assert_refused(&inspect(&path), &path, "not a valid safetensors file");
    // A flipped byte in the JSON header, and a header length claiming too much.
    let mut flipped = bytes.clone();
    flipped[8] = b'[';
    std::fs::write(&path, &flipped).unwrap();
    assert_refused(&inspect(&path), &path, "not a valid safetensors file");
    let mut long = bytes.clone();
    long[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&path, &long).unwrap();
    assert_refused(&inspect(&path), &path, "not a valid safetensors file");
    // Metadata that is not a burstwatch spec.
    let alien = rewrite_header(&bytes, |h| {
        h["__metadata__"]["burstwatch.spec"] = serde_json::json!("{\"layers\": []}");
    });
    std::fs::write(&path, &alien).unwrap();
    assert_refused(
        &inspect(&path),
        &path,
        "burstwatch.spec is not a valid architecture",
    );
}

#[test]
fn cli_inspect_shows_thresholds_and_provenance_and_refuses_bad_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("trained.safetensors");
    let mut m = exotic_model();
    m.thresholds = Some(model::AlertThresholds {
        model: 0.25,
        fused: 0.5,
    });
    m.trained = Some("made by a test".into());
    weights::save(&m, &path).unwrap();
    let out = burstwatch(&inspect(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["thresholds"],
        serde_json::json!({"model": 0.25, "fused": 0.5})
    );
    assert_eq!(v["trained"], "made by a test");

    let bytes = std::fs::read(&path).unwrap();
    for bad in [
        r#"{"model": 1.5, "fused": 0.5}"#,
        r#"{"model": 0.3}"#,
        r#"{"model": 0.3, "fused": 0.5, "baseline": 0.6}"#,
        "0.3",
    ] {
        let edited = rewrite_header(&bytes, |h| {
            h["__metadata__"]["burstwatch.thresholds"] = serde_json::json!(bad);
        });
        std::fs::write(&path, &edited).unwrap();
        assert_refused(&inspect(&path), &path, "burstwatch.thresholds");
        assert_refused(&inspect(&path), &path, "strictly between 0 and 1");
    }
}

#[test]
fn cli_refuses_a_wrong_tensor_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes) = upbeat_file(tmp.path());
    // Same number of values, so only burstwatch's own check can notice.
    let bad = rewrite_header(&bytes, |h| {
        h["stage0.kernel"]["shape"] = serde_json::json!([3, 3, 64, 4]);
    });
    std::fs::write(&path, &bad).unwrap();
    assert_refused(
        &inspect(&path),
        &path,
        "tensor stage0.kernel has shape [3, 3, 64, 4]; expected [3, 3, 4, 64]",
    );
    // A spec whose stages do not chain.
    let bad = rewrite_header(&bytes, |h| {
        let spec = h["__metadata__"]["burstwatch.spec"]
            .as_str()
            .unwrap()
            .replace("\"in_channels\":4", "\"in_channels\":3");
        h["__metadata__"]["burstwatch.spec"] = serde_json::json!(spec);
    });
    std::fs::write(&path, &bad).unwrap();
    assert_refused(
        &inspect(&path),
        &path,
        "stage0.kernel has shape [3, 3, 4, 64]; expected [3, 3, 3, 64]",
    );
}

#[test]
fn cli_refuses_nan_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes) = upbeat_file(tmp.path());
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header["head.weights"]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut bad = bytes.clone();
    let at = 8 + n + start + 4 * 3;
    bad[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    assert_refused(
        &inspect(&path),
        &path,
        "tensor head.weights holds NaN at index 3",
    );
}

#[test]
fn cli_refuses_a_saved_model_without_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(UPBEAT);
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        saved_model(UPBEAT).join("saved_model.pb"),
        dir.join("saved_model.pb"),
    )
    .unwrap();
    let out = tmp.path().join("m.safetensors");
    assert_refused(
        &import_args(&dir, &out),
        &dir,
        "without a variables/ directory",
    );
    assert_refused(&inspect(&dir), &dir, "without a variables/ directory");
    assert!(!out.exists());
}

#[test]
fn cli_refuses_a_corrupt_variables_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_saved_model(UPBEAT, tmp.path());
    let index = dir.join("variables/variables.index");
    flip_byte(&index, 100);
    let out = tmp.path().join("m.safetensors");
    assert_refused(
        &import_args(&dir, &out),
        &index,
        "block crc32c mismatch at offset 0",
    );
    // A cut index loses its footer.
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..bytes.len() - 10]).unwrap();
    assert_refused(&import_args(&dir, &out), &index, "table magic");
}

#[test]
fn cli_refuses_a_data_file_with_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_saved_model(UPBEAT, tmp.path());
    let data = dir.join("variables/variables.data-00000-of-00001");
    // Inside trainable_variables/0 (the ConvLSTM kernel: bytes 220 .. 9436).
    flip_byte(&data, 1000);
    let out = tmp.path().join("m.safetensors");
    assert_refused(
        &import_args(&dir, &out),
        &data,
        "tensor \"trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE\": crc32c mismatch",
    );
}

#[test]
fn cli_refuses_a_truncated_data_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_saved_model(VISIONARY, tmp.path());
    let data = dir.join("variables/variables.data-00000-of-00001");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(
        &import_args(&dir, &tmp.path().join("m.safetensors")),
        &data,
        "run past the end of the file",
    );
}

#[test]
fn cli_refuses_an_unknown_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_saved_model(UPBEAT, tmp.path());
    let pb = dir.join("saved_model.pb");
    std::fs::write(
        &pb,
        edited_pb("\"BatchNormalization\"", "\"LayerNormalization\""),
    )
    .unwrap();
    assert_refused(
        &import_args(&dir, &tmp.path().join("m.safetensors")),
        &pb,
        "layer batchnorm_1 (LayerNormalization): unknown layer class LayerNormalization",
    );
}

#[test]
fn cli_refuses_a_corrupt_saved_model_pb() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_saved_model(UPBEAT, tmp.path());
    let pb = dir.join("saved_model.pb");
    std::fs::write(&pb, b"\x0a\xff\xff\xff\xff\x0fnot a protocol buffer").unwrap();
    assert_refused(
        &import_args(&dir, &tmp.path().join("m.safetensors")),
        &pb,
        "not a SavedModel protocol buffer",
    );
}

#[test]
fn cli_refuses_a_missing_model() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here.safetensors");
    assert_refused(&inspect(&missing), &missing, "cannot read");
}
