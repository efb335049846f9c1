//! `history.png`: latency of every operation over time (acknowledged grey,
//! failed orange, unknown red, on a log scale) above the acknowledged
//! operations per second, fault windows shaded in both.
//!
//! Text needs a TrueType font, read at run time (`CHAOS_FONT`, else
//! DejaVu Sans where Debian's fonts-dejavu-core puts it); without one the
//! picture is drawn without labels. Nothing here needs a system library to
//! build.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::history::{secs, History, Outcome};

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a font for "sans-serif" once; whether one is there.
fn font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let from_env = std::env::var("CHAOS_FONT").ok();
        let paths = from_env.iter().map(String::as_str).chain(FONT_PATHS);
        for path in paths {
            if let Ok(bytes) = std::fs::read(path) {
                // The registry wants 'static bytes; one font per process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

type Error = Box<dyn std::error::Error>;

const FAULT_SHADE: RGBColor = RGBColor(255, 205, 205);

/// Draws the picture of `history` into `path`.
pub fn draw(history: &History, path: &Path) -> Result<(), Error> {
    let labels = font();
    let root = BitMapBackend::new(path, (1400, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = history
        .ops
        .iter()
        .map(|o| o.complete_ns)
        .chain(history.faults.iter().filter_map(|f| f.end_ns))
        .max()
        .unwrap_or(1_000_000_000);
    let x_max = secs(end).max(1.0);
    let (top, bottom) = root.split_vertically(470);
    latency_panel(history, &top, x_max, labels)?;
    throughput_panel(history, &bottom, x_max, labels)?;
    root.present()?;
    Ok(())
}

/// A panel's frame: margin, and with labels a caption and axis label room.
fn frame<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    labels: bool,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if labels {
        builder
            .caption(caption, ("sans-serif", 18))
            .x_label_area_size(30)
            .y_label_area_size(60);
    }
    builder
}

fn fault_windows(history: &History) -> Vec<(f64, f64, String)> {
    history
        .faults
        .iter()
        .map(|f| {
            let start = secs(f.start_ns);
            // An instant fault (leader transfer) still gets a visible band.
            let end = secs(f.end_ns.unwrap_or(f.start_ns)).max(start + 0.15);
            (start, end, f.name.clone())
        })
        .collect()
}

fn latency_panel(
    history: &History,
    area: &DrawingArea<BitMapBackend, Shift>,
    x_max: f64,
    labels: bool,
) -> Result<(), Error> {
    let y_max = history
        .ops
        .iter()
        .map(|o| (o.complete_ns - o.invoke_ns) as f64 / 1e6)
        .fold(10.0, f64::max)
        * 1.5;
    let caption = "latency per operation (grey ok, orange failed, red unknown; faults shaded)";
    let mut builder = frame(area, caption, labels);
    let mut chart = builder.build_cartesian_2d(0f64..x_max, (0.5f64..y_max).log_scale())?;
    if labels {
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("seconds").y_desc("ms").light_line_style(WHITE);
        mesh.draw()?;
    }
    for (start, end, name) in fault_windows(history) {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(start, 0.5), (end, y_max)],
            FAULT_SHADE.filled(),
        )))?;
        if labels {
            chart.draw_series(std::iter::once(Text::new(
                name,
                (start, y_max / 1.3),
                ("sans-serif", 12).into_font().color(&RED),
            )))?;
        }
    }
    let point = |o: &crate::history::Op| {
        let ms = ((o.complete_ns - o.invoke_ns) as f64 / 1e6).max(0.5);
        (secs(o.invoke_ns), ms)
    };
    let of = |outcome| history.ops.iter().filter(move |o| o.outcome == outcome);
    chart.draw_series(
        of(Outcome::Ok).map(|o| Circle::new(point(o), 1, RGBColor(110, 110, 110).filled())),
    )?;
    chart.draw_series(
        of(Outcome::Failed).map(|o| Circle::new(point(o), 2, RGBColor(255, 150, 0).filled())),
    )?;
    chart
        .draw_series(of(Outcome::Unknown).map(|o| Cross::new(point(o), 4, RED.stroke_width(2))))?;
    Ok(())
}

fn throughput_panel(
    history: &History,
    area: &DrawingArea<BitMapBackend, Shift>,
    x_max: f64,
    labels: bool,
) -> Result<(), Error> {
    let buckets = x_max.ceil() as usize + 1;
    let mut ok = vec![0u32; buckets];
    let mut bad = vec![0u32; buckets];
    for o in &history.ops {
        let b = (secs(o.complete_ns) as usize).min(buckets - 1);
        match o.outcome {
            Outcome::Ok => ok[b] += 1,
            _ => bad[b] += 1,
        }
    }
    let y_max = ok.iter().chain(&bad).copied().max().unwrap_or(1).max(1) as f64 * 1.2;
    let caption = "operations per second (blue acknowledged, red failed or unknown)";
    let mut builder = frame(area, caption, labels);
    let mut chart = builder.build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    if labels {
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("seconds")
            .y_desc("ops/s")
            .light_line_style(WHITE);
        mesh.draw()?;
    }
    for (start, end, _) in fault_windows(history) {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(start, 0.0), (end, y_max)],
            FAULT_SHADE.filled(),
        )))?;
    }
    let line = |counts: &[u32]| {
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| (i as f64 + 0.5, *c as f64))
            .collect::<Vec<_>>()
    };
    chart.draw_series(LineSeries::new(line(&ok), BLUE.stroke_width(2)))?;
    chart.draw_series(LineSeries::new(line(&bad), RED.stroke_width(2)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, FaultWindow, Op, OpKind};

    #[test]
    fn a_history_draws_as_a_png() {
        let ops = (0..300u64).map(|i| {
            let outcome = match i % 50 {
                0 => Outcome::Unknown,
                1 => Outcome::Failed,
                _ => Outcome::Ok,
            };
            Event::Op(Op {
                n: i,
                client: (i % 4) as u32,
                router: 0,
                kind: OpKind::Count { count: Some(1) },
                invoke_ns: i * 20_000_000,
                complete_ns: i * 20_000_000 + (i % 7 + 1) * 3_000_000,
                outcome,
                status: 200,
                error: None,
            })
        });
        let fault = Event::Fault(FaultWindow {
            name: "kill".into(),
            detail: "node 1".into(),
            start_ns: 1_000_000_000,
            in_place_ns: None,
            end_ns: Some(2_500_000_000),
        });
        let history = History::from_events(ops.chain([fault]));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.png");
        draw(&history, &path).expect("draw");
        let bytes = std::fs::read(&path).expect("png written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
