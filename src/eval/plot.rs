//! Figures of an evaluation, drawn with plotters into a PNG: the ROC curves of every
//! predictor, and the y~ series coloured by the first predictor's score with the positive
//! labels marked, as the study's figures.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

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
fn font_available() -> bool {
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
