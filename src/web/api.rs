//! `/api/cameras` and a camera's scores: JSON for the page and for scripts. Settings come
//! as the run's `start` line gives them (sources without credentials), figures and state
//! from the run's [`Board`].

use serde_json::{json, Value};

use crate::live::board::{AlertView, Live};
use crate::live::{Board, CameraBoard};

/// A file of the camera's clips folder as the page links it (`/media/<camera>/<file>`).
fn media_url(c: &CameraBoard, path: Option<&str>) -> Option<String> {
    let path = std::path::Path::new(path?);
    let folder = c.clips_folder.as_deref()?;
    if path.parent()? != folder {
        return None;
    }
    let file = path.file_name()?.to_str()?;
    let camera = percent_encoding::utf8_percent_encode(&c.name, percent_encoding::NON_ALPHANUMERIC);
    Some(format!("/media/{camera}/{file}"))
}

fn alert(c: &CameraBoard, a: &AlertView) -> Value {
    json!({
        "id": a.id,
        "frame": a.frame,
        "time": a.time,
        "score": a.score,
        "burst": a.burst,
        "snapshot": media_url(c, a.snapshot.as_deref()),
        "clip": media_url(c, a.clip.as_deref()),
    })
}

/// One camera: settings, state, figures, last alerts (newest first).
pub fn camera(c: &CameraBoard, l: &Live) -> Value {
    let state = l.state.map_or(Value::from("connecting"), |s| {
        serde_json::to_value(s).unwrap_or_default()
    });
    json!({
        "name": c.name,
        "settings": c.start,
        "crop": c.crop,
        "clips": c.clips_folder.as_ref().map(|p| p.display().to_string()),
        "state": state,
        "message": l.message,
        "stale": l.stale(),
        "last_frame_age_s": l.last_frame.map(|t| t.elapsed().as_secs_f64()),
        "frames": l.frames,
        "fps": l.fps(),
        "dropped": l.ring_dropped,
        "gaps": l.gaps,
        "reconnects": l.reconnects,
        "alerts": l.alerts,
        "outcomes": {"burst": l.outcomes_burst, "none": l.outcomes_none},
        "precision": l.precision(),
        "auc": l.auc,
        "latency_p99_ms": l.latency_p99_ms(),
        "score": l.score(),
        "recent_alerts": l.recent.iter().rev().map(|a| alert(c, a)).collect::<Vec<_>>(),
    })
}

/// Every camera, in the run's order.
pub fn cameras(board: &Board) -> Value {
    let all: Vec<Value> = board
        .cameras()
        .iter()
        .map(|c| camera(c, &c.read()))
        .collect();
    json!({ "version": env!("CARGO_PKG_VERSION"), "cameras": all })
}

/// The camera's scores after frame `after` (the last minute's when `None`), as columns.
pub fn scores(c: &CameraBoard, after: Option<u64>) -> Value {
    let points = c.scores_after(after);
    json!({
        "threshold": c.start.threshold,
        "frame": points.iter().map(|p| p.frame).collect::<Vec<_>>(),
        "t_ms": points.iter().map(|p| p.t_ms).collect::<Vec<_>>(),
        "score": points.iter().map(|p| p.score).collect::<Vec<_>>(),
        "p_baseline": points.iter().map(|p| p.p_baseline).collect::<Vec<_>>(),
    })
}
