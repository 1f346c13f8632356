//! An alert's snapshot, a PNG a person reads in one glance: the source's picture at the
//! alert with the crop rectangle drawn, above the last 10 s of the score, the baseline's
//! probability and the threshold, the alert marked (plotters, as `eval --plot`).

use plotters::prelude::*;

use super::frame::ClipFrame;
use crate::eval::plot::font_available;
use crate::frame::{Crop, FPS};

/// Width of the snapshot; the picture is scaled to it.
const WIDTH: u32 = 640;
/// Height of the chart under the picture.
const CHART_HEIGHT: u32 = 240;
/// Seconds of score history drawn.
pub const HISTORY_S: u64 = 10;

/// One frame's scores, as the chart draws them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    pub frame: u64,
    pub score: Option<f64>,
    pub p_baseline: Option<f64>,
}

/// What the snapshot says about its alert.
#[derive(Debug, Clone)]
pub struct AlertCaption {
    pub camera: String,
    pub frame: u64,
    pub score: f64,
    pub threshold: f64,
    pub wall_time: String,
}

const SCORE: RGBColor = RGBColor(230, 120, 0);
const BASELINE: RGBColor = RGBColor(30, 90, 200);
const ALERT: RGBColor = RGBColor(200, 30, 30);

/// Renders the snapshot as PNG bytes. `picture` is the frame at the alert (`None`: the
/// branch had none, and the picture is left grey); `source` the size of the source's
/// picture, in which `crop` is given.
pub fn render(
    picture: Option<&ClipFrame>,
    source: (u32, u32),
    crop: Option<Crop>,
    trace: &[TracePoint],
    alert: &AlertCaption,
) -> Result<Vec<u8>, String> {
    let (fw, fh) = picture.map_or(source, |f| (f.width(), f.height()));
    let ph = ((u64::from(WIDTH) * u64::from(fh.max(1))) / u64::from(fw.max(1)))
        .clamp(1, 4 * u64::from(WIDTH)) as u32;
    let (w, h) = (WIDTH, ph + CHART_HEIGHT);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    match picture {
        Some(f) => f.scaled_rgb(w, ph, &mut rgb[..(w * ph * 3) as usize]),
        None => rgb[..(w * ph * 3) as usize].fill(128),
    }
    draw(&mut rgb, (w, h), ph, source, crop, trace, alert)
        .map_err(|e| format!("cannot draw the snapshot: {e}"))?;
    encode_png(&rgb, (w, h), png::ColorType::Rgb)
}

/// The crop rectangle (given in `source` pixels) on a picture drawn `size` pixels large.
fn draw_crop<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    size: (u32, u32),
    source: (u32, u32),
    crop: Option<Crop>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if let Some(c) = crop {
        let sx = f64::from(size.0) / f64::from(source.0.max(1));
        let sy = f64::from(size.1) / f64::from(source.1.max(1));
        let p = |x: u32, y: u32| ((f64::from(x) * sx) as i32, (f64::from(y) * sy) as i32);
        area.draw(&Rectangle::new(
            [p(c.x, c.y), p(c.x + c.width, c.y + c.height)],
            ShapeStyle::from(&ALERT).stroke_width(2),
        ))?;
    }
    Ok(())
}

/// The source's picture alone, at most 640 pixels wide, the crop drawn: what the web page
/// shows of a camera.
pub fn picture_png(
    picture: &ClipFrame,
    source: (u32, u32),
    crop: Option<Crop>,
) -> Result<Vec<u8>, String> {
    let (fw, fh) = (picture.width().max(1), picture.height().max(1));
    let w = fw.min(WIDTH);
    let h = ((u64::from(w) * u64::from(fh)) / u64::from(fw)).max(1) as u32;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    picture.scaled_rgb(w, h, &mut rgb);
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw_crop(&root, (w, h), source, crop).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb, (w, h), png::ColorType::Rgb)
}

/// 8-bit pixels as PNG bytes, compressed fast (an alert or a page waits for them).
pub(crate) fn encode_png(
    pixels: &[u8],
    (w, h): (u32, u32),
    color: png::ColorType,
) -> Result<Vec<u8>, String> {
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(png_bytes)
}

fn draw(
    rgb: &mut [u8],
    size: (u32, u32),
    picture_height: u32,
    source: (u32, u32),
    crop: Option<Crop>,
    trace: &[TracePoint],
    alert: &AlertCaption,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = font_available();
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    let (top, bottom) = root.split_vertically(picture_height);
    draw_crop(&top, (size.0, picture_height), source, crop)?;
    bottom.fill(&WHITE)?;
    let secs = |frame: u64| (frame as f64 - alert.frame as f64) / f64::from(FPS);
    let mut b = ChartBuilder::on(&bottom);
    b.margin(8);
    if text {
        b.caption(
            format!(
                "{} alert, frame {}, score {:.3} > {:.3}, {}",
                alert.camera, alert.frame, alert.score, alert.threshold, alert.wall_time
            ),
            ("sans-serif", 15),
        )
        .x_label_area_size(36)
        .y_label_area_size(34);
    }
    let mut chart = b.build_cartesian_2d(-(HISTORY_S as f64)..0.5, 0f64..1.02f64)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds before the alert")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    let line = |pick: fn(&TracePoint) -> Option<f64>| {
        trace
            .iter()
            .filter_map(move |t| pick(t).map(|v| (secs(t.frame), v)))
            .collect::<Vec<_>>()
    };
    let series = chart.draw_series(LineSeries::new(
        line(|t| t.p_baseline),
        ShapeStyle::from(&BASELINE).stroke_width(1),
    ))?;
    if text {
        series
            .label("baseline")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BASELINE));
    }
    let series = chart.draw_series(LineSeries::new(
        line(|t| t.score),
        ShapeStyle::from(&SCORE).stroke_width(2),
    ))?;
    if text {
        series
            .label("score")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], SCORE));
    }
    let series = chart.draw_series(LineSeries::new(
        [
            (-(HISTORY_S as f64), alert.threshold),
            (0.5, alert.threshold),
        ],
        ShapeStyle::from(&ALERT.mix(0.6)).stroke_width(1),
    ))?;
    if text {
        series
            .label("threshold")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], ALERT.mix(0.6)));
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (0.0, 1.02)],
        ShapeStyle::from(&ALERT).stroke_width(1),
    ))?;
    chart.draw_series([Circle::new((0.0, alert.score), 4, ALERT.filled())])?;
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_the_picture_above_the_chart() {
        gstreamer::init().unwrap();
        let gray: Vec<u8> = (0..320 * 240)
            .map(|i| if i % 320 < 160 { 16 } else { 235 })
            .collect();
        let f = ClipFrame::from_gray(1, 0, 320, 240, &gray).unwrap();
        let trace: Vec<TracePoint> = (0..300)
            .map(|k| TracePoint {
                frame: 700 + k,
                score: Some(k as f64 / 300.0),
                p_baseline: (k > 10).then_some(0.2),
            })
            .collect();
        let caption = AlertCaption {
            camera: "tank".into(),
            frame: 999,
            score: 0.99,
            threshold: 0.5,
            wall_time: "2026-12-01T00:00:00Z".into(),
        };
        let crop = Crop::new(10, 10, 100, 100).ok();
        let bytes = render(Some(&f), (320, 240), crop, &trace, &caption).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut img = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut img).unwrap();
        assert_eq!((info.width, info.height), (640, 480 + CHART_HEIGHT));
        let px = |x: usize, y: usize| &img[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3];
        // The picture: black left half, white right half; the crop's red edge at (20, 40).
        assert_eq!(px(100, 300), [0, 0, 0]);
        assert_eq!(px(600, 300), [255, 255, 255]);
        assert_eq!(px(20, 100), [200, 30, 30]);
    }
}
