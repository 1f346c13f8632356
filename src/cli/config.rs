//! `config check`: validate a lab's config file as `run --config` would, load every model
//! it names, and print the resolved cameras as JSON, credentials masked.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use burstwatch::config::{self, CameraEntry};
use burstwatch::live::ModelSet;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file; print its cameras with every default filled in (exit 2 and
    /// one line naming the file, line and column on a mistake).
    Check {
        /// The config file.
        file: PathBuf,
    },
}

pub fn config(c: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { file } = c;
    let lab = config::load(&file)?;
    let mut models = ModelSet::new();
    let mut cameras = Vec::with_capacity(lab.cameras.len());
    for entry in &lab.cameras {
        let model = models.load(&entry.config.model)?;
        cameras.push(camera_json(entry, model.as_ref().map(|m| &m.info)));
    }
    let o = &lab.outputs;
    let out = json!({
        "config": std::fs::canonicalize(&file).unwrap_or(file).display().to_string(),
        "cameras": cameras,
        "outputs": {
            "mqtt": o.mqtt.as_ref().map(mqtt_json),
            "webhooks": o.webhooks.iter().map(webhook_json).collect::<Vec<_>>(),
        },
        "engine": {
            "batch_wait_ms": lab.batch_wait.map(|w| w.as_secs_f64() * 1e3),
        },
        "http": lab.http.as_ref().map(|h| json!({
            "listen": h.listen.to_string(),
            "token": h.token.as_ref().map(|_| "***"),
            "token_from": h.token_from,
        })),
    });
    super::print_stdout(&(serde_json::to_string_pretty(&out)? + "\n"))
}

/// The MQTT output as `config check` prints it, the password masked.
fn mqtt_json(m: &burstwatch::output::MqttSettings) -> serde_json::Value {
    json!({
        "url": m.display(),
        "username": m.username,
        "password": m.password.as_ref().map(|_| "***"),
        "password_from": m.password_from,
        "client_id": m.client_id,
        "qos": m.qos,
        "predictions": m.predictions,
        "keepalive_s": m.keepalive.as_secs_f64(),
        "queue": m.queue,
        "spool_dir": m.spool_dir.as_ref().map(|d| d.display().to_string()),
        "ca_file": m.ca_file.as_ref().map(|d| d.display().to_string()),
        "drain_s": m.drain.as_secs_f64(),
    })
}

/// A webhook as `config check` prints it, the token masked.
fn webhook_json(w: &burstwatch::output::WebhookSettings) -> serde_json::Value {
    json!({
        "url": w.display(),
        "events": w.events,
        "token": w.token.as_ref().map(|_| "***"),
        "token_from": w.token_from,
        "timeout_s": w.timeout.as_secs_f64(),
        "queue": w.queue,
        "spool_dir": w.spool_dir.as_ref().map(|d| d.display().to_string()),
        "drain_s": w.drain.as_secs_f64(),
    })
}

/// One camera as `config check` prints it: what it will run, nothing secret.
fn camera_json(
    entry: &CameraEntry,
    model: Option<&burstwatch::output::event::ModelInfo>,
) -> serde_json::Value {
    let c = &entry.config;
    json!({
        "name": c.name,
        "source": c.source.display,
        "username": c.source.user(),
        "password": c.source.has_password().then_some("***"),
        "password_from": entry.password_from,
        "crop": c.capture.crop.map(|r| [r.x, r.y, r.width, r.height]),
        "preprocess": c.preprocess,
        "model": c.model.to_string(),
        "model_name": model.map(|m| m.name.clone()),
        "model_sha256": model.map(|m| m.sha256.clone()),
        "mode": c.mode,
        "device": c.device.to_string(),
        "score": c.score,
        "threshold": c.threshold,
        "emit": c.emit,
        "fast": c.capture.fast,
        "rtsp_latency_ms": c.capture.rtsp_latency_ms,
        "rtsp_transport": c.capture.rtsp_transport,
        "stats_every": c.stats_every.as_secs_f64(),
        "clips": c.clips.as_ref().map(|k| json!({
            "dir": k.dir.join(burstwatch::clips::store::folder_name(&c.name)).display().to_string(),
            "pre_s": k.pre.as_secs_f64(),
            "post_s": k.post.as_secs_f64(),
            "max_mb": k.max_mb,
            "max_width": k.max_width,
        })),
    })
}
