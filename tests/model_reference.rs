//! `Model::from_reference_npz`: the study's two reference-weight files become the
//! architectures of DESIGN §1; anything else is a clear error.

use std::path::Path;

use burstwatch::model::{Model, STUDY_INPUT};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

fn load(name: &str) -> Model {
    Model::from_reference_npz(
        &Path::new(SHARED).join(format!("models/{name}.reference-weights.npz")),
    )
    .unwrap()
}

#[test]
fn upbeat_snowflake_is_one_convlstm_with_batch_norm() {
    let m = load("upbeat-snowflake-91");
    m.validate().unwrap();
    assert_eq!(m.name, "upbeat-snowflake-91");
    assert_eq!(m.input, STUDY_INPUT);
    assert_eq!(m.stages.len(), 1);
    let s = &m.stages[0];
    assert_eq!((s.lstm.filters, s.lstm.in_channels, s.pool), (16, 4, false));
    let bn = s.norm.as_ref().unwrap();
    assert_eq!(bn.epsilon, 0.001);
    assert!(bn.variance.iter().all(|&v| v > 0.0));
    assert_eq!(m.head.weights.len(), 16);
    assert_eq!(m.stage_maps(), vec![(118, 158)]);
    // DESIGN §1: 215 M multiply-adds per time step.
    assert_eq!(m.macs_per_step() / 1_000_000, 214);
    // 11.5k parameters.
    let params = s.lstm.kernel.len() + s.lstm.recurrent.len() + m.head.weights.len() + 1;
    assert_eq!(params, 11_537);
}

#[test]
fn visionary_serenity_pools_and_normalises_between_its_two_convlstms() {
    let m = load("visionary-serenity");
    m.validate().unwrap();
    assert_eq!(m.stages.len(), 2);
    assert!(m.stages[0].pool && m.stages[0].norm.is_some());
    assert!(!m.stages[1].pool && m.stages[1].norm.is_none());
    assert_eq!(
        (m.stages[1].lstm.filters, m.stages[1].lstm.in_channels),
        (32, 16)
    );
    assert_eq!(m.stage_maps(), vec![(118, 158), (57, 77)]);
    let bn = m.stages[0].norm.as_ref().unwrap();
    // variables/2 has a negative entry, so it is the mean; variables/3 the variance.
    assert!(bn.mean.iter().any(|&v| v < 0.0));
    assert!(bn.variance.iter().all(|&v| v > 0.0));
}

#[test]
fn other_archives_are_refused() {
    let err = Model::from_reference_npz(Path::new("/nonexistent/x.npz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.npz"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("other.npz");
    std::fs::copy(Path::new(SHARED).join("golden/seq11/y_tilde.npy"), &npz).unwrap();
    let err = Model::from_reference_npz(&npz).unwrap_err().to_string();
    assert!(err.contains("other.npz") && !err.contains('\n'), "{err}");
}

/// Writes the upbeat-snowflake arrays to a new .npz, with `edit` applied to each
/// (name, data, shape) first.
fn rewrite_upbeat(path: &Path, edit: impl Fn(&str, &mut Vec<f32>, &mut Vec<usize>)) {
    use std::io::Write;
    let arrays = burstwatch::io::npy::read_npz(
        &Path::new(SHARED).join("models/upbeat-snowflake-91.reference-weights.npz"),
    )
    .unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, a) in arrays {
        let (mut data, mut shape) = (a.to_f32(), a.shape.clone());
        edit(&name, &mut data, &mut shape);
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(&burstwatch::io::npy::encode(&data, &shape))
            .unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn bad_weights_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let nan = dir.path().join("nan.npz");
    rewrite_upbeat(&nan, |name, data, _| {
        if name == "trainable_variables/1" {
            data[5] = f32::NAN;
        }
    });
    let err = Model::from_reference_npz(&nan).unwrap_err().to_string();
    assert!(err.contains("trainable_variables/1[5] is NaN"), "{err}");

    let shape = dir.path().join("shape.npz");
    rewrite_upbeat(&shape, |name, data, shape| {
        if name == "layer_with_weights-2/kernel" {
            data.truncate(8);
            *shape = vec![8, 1];
        }
    });
    let err = Model::from_reference_npz(&shape).unwrap_err().to_string();
    assert!(
        err.contains("layer_with_weights-2/kernel has shape [8, 1]; expected [16, 1]"),
        "{err}"
    );

    let var = dir.path().join("variance.npz");
    rewrite_upbeat(&var, |name, data, _| {
        if name == "layer_with_weights-1/moving_variance" {
            data[2] = -1.0;
        }
    });
    let err = Model::from_reference_npz(&var).unwrap_err().to_string();
    assert!(err.contains("moving_variance[2] is -1"), "{err}");

    // An unchanged rewrite loads and equals the original.
    let same = dir.path().join("same.npz");
    rewrite_upbeat(&same, |_, _, _| {});
    assert_eq!(
        Model::from_reference_npz(&same).unwrap().stages,
        load("upbeat-snowflake-91").stages
    );
}
