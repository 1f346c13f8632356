//! Figures of an evaluation, drawn with plotters into a PNG: the ROC curves of every
//! predictor, and the y~ series coloured by the first predictor's score with the positive
//! labels marked, as the study's figures; and, by events, recall against false alarms per
//! hour over thresholds with each predictor's alert threshold marked, beside the first
//! predictor's lead times.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::events::EventSummary;
use super::{Predictor, Roc, Summary};

/// System fonts tried for the labels (Debian's fonts-dejavu-core first).
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a system font with plotters once; false when none was found (the figure is
/// then drawn without text).
pub(crate) fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for f in FONT_FILES {
            if let Ok(bytes) = std::fs::read(f) {
                // plotters keeps a 'static reference: the font lives for the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!(
            "no TrueType font found (install fonts-dejavu-core); the figure has no text"
        );
        false
    })
}

/// The "jet" colour map the study used, for a score in [0, 1].
fn jet(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let c = |x: f64| ((1.5 - (4.0 * v - x).abs()).clamp(0.0, 1.0) * 255.0) as u8;
    RGBColor(c(3.0), c(2.0), c(1.0))
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(230, 120, 0),
    RGBColor(30, 90, 200),
    RGBColor(40, 160, 60),
    RGBColor(200, 40, 40),
    RGBColor(140, 60, 180),
    RGBColor(90, 90, 90),
];

/// Draws the evaluation figure: ROC curves (left) and y~ coloured by score (right).
/// `start` is the frame of `labels[0]` and of every predictor's first score.
pub fn evaluation_figure(
    path: &Path,
    y: &[f64],
    start: usize,
    labels: &[bool],
    predictors: &[Predictor],
    rows: &[(String, Summary, Roc)],
) -> Result<()> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(650);
    draw_roc(&left, rows, text).map_err(|e| anyhow!("{e}"))?;
    let colour_by = &predictors[0];
    draw_series(&right, y, start, labels, colour_by, text).map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Draws the by-events figure: for each predictor (name, at its alert threshold, over
/// thresholds), recall against false alarms per hour (left), and the lead times of the
/// first predictor's warned chases (right).
pub fn events_figure(
    path: &Path,
    predictors: &[(&str, &EventSummary, &[EventSummary])],
) -> Result<()> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(750);
    draw_recall_curve(&left, predictors, text).map_err(|e| anyhow!("{e}"))?;
    if let Some((name, at, _)) = predictors.first() {
        draw_leads(&right, name, at, text).map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw_roc(area: &Area, rows: &[(String, Summary, Roc)], text: bool) -> DrawResult {
    let mut b = ChartBuilder::on(area);
    b.margin(20);
    if text {
        b.caption("ROC", ("sans-serif", 28))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(0f64..1f64, 0f64..1.05f64)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (1.0, 1.0)],
        ShapeStyle::from(&BLACK.mix(0.4)).stroke_width(1),
    ))?;
    for (i, (name, s, roc)) in rows.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let series = chart.draw_series(LineSeries::new(
            roc.fpr.iter().copied().zip(roc.tpr.iter().copied()),
            ShapeStyle::from(&colour).stroke_width(2),
        ))?;
        if text {
            series
                .label(format!("{name} (AUC {:.4})", s.auc))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .draw()?;
    }
    Ok(())
}

fn draw_series(
    area: &Area,
    y: &[f64],
    start: usize,
    labels: &[bool],
    scores: &Predictor,
    text: bool,
) -> DrawResult {
    let n = scores.scores.len();
    let frames = start..start + n;
    let ys = &y[frames.clone()];
    let top = ys.iter().copied().fold(0.0, f64::max) * 1.05 + 1e-12;
    let mut b = ChartBuilder::on(area);
    b.margin(20);
    if text {
        b.caption(
            format!(
                "y~ coloured by {} score, positive labels in pink",
                scores.name
            ),
            ("sans-serif", 24),
        )
        .x_label_area_size(45)
        .y_label_area_size(70);
    }
    let mut chart = b.build_cartesian_2d(frames.start as f64..frames.end as f64, 0f64..top)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("frame")
            .y_desc("y~")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    chart.draw_series(LineSeries::new(
        frames.clone().map(|t| (t as f64, y[t])),
        ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1),
    ))?;
    chart.draw_series(
        frames
            .clone()
            .zip(&scores.scores)
            .map(|(t, &s)| Circle::new((t as f64, y[t]), 3, jet(s).filled())),
    )?;
    chart.draw_series(
        frames
            .zip(labels)
            .filter(|(_, &l)| l)
            .map(|(t, _)| Circle::new((t as f64, y[t]), 2, RGBColor(255, 105, 180).filled())),
    )?;
    Ok(())
}

fn draw_recall_curve(
    area: &Area,
    predictors: &[(&str, &EventSummary, &[EventSummary])],
    text: bool,
) -> DrawResult {
    let fah = |e: &EventSummary| e.false_alarms_per_hour;
    let right = predictors
        .iter()
        .flat_map(|(_, at, c)| c.iter().chain(std::iter::once(*at)).map(fah))
        .fold(1.0, f64::max)
        * 1.05;
    let mut b = ChartBuilder::on(area);
    b.margin(20);
    if text {
        b.caption("chases warned against false alarms", ("sans-serif", 26))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(0f64..right, 0f64..1.05f64)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("false alarms per hour")
            .y_desc("recall (chases warned)")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, (name, at, curve)) in predictors.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // In order of false alarms: the alert rule's cooldown and re-arming make both
        // figures move unevenly with the threshold.
        let mut points: Vec<(f64, f64)> = curve
            .iter()
            .filter_map(|e| Some((fah(e), e.recall?)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        if let Some(r) = at.recall {
            chart.draw_series(std::iter::once(TriangleMarker::new(
                (fah(at), r),
                9,
                colour.filled(),
            )))?;
        }
        let series = chart.draw_series(LineSeries::new(
            points.iter().copied(),
            ShapeStyle::from(&colour).stroke_width(2),
        ))?;
        if text {
            series
                .label(format!("{name} (triangle: threshold {:.3})", at.threshold))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()?;
    }
    Ok(())
}

fn draw_leads(area: &Area, name: &str, at: &EventSummary, text: bool) -> DrawResult {
    // Bins of a quarter second up to the warning window's end.
    let top_s = at.leads_s.iter().copied().fold(3.0, f64::max);
    let bins = (top_s / 0.25).ceil() as usize + 1;
    let mut counts = vec![0u32; bins];
    for &l in &at.leads_s {
        counts[((l / 0.25) as usize).min(bins - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut b = ChartBuilder::on(area);
    b.margin(20);
    if text {
        b.caption(
            format!("lead times, {name} at {:.3}", at.threshold),
            ("sans-serif", 26),
        )
        .x_label_area_size(45)
        .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(0f64..bins as f64 * 0.25, 0u32..most + 1)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds before the chase started")
            .y_desc("chases")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(k, &c)| {
        let x = k as f64 * 0.25;
        Rectangle::new([(x, 0), (x + 0.25, c)], PALETTE[0].mix(0.8).filled())
    }))?;
    Ok(())
}
