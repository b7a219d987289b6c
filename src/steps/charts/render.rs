//! Draws shaped chart data with plotters onto any backend (SVG and PNG use the same code).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::data::{BarChart, Line, LineChart, RetentionChart};

/// Font family every text uses; `font.rs` registers the bundled DejaVu Sans under it.
pub(super) const FONT: &str = "sans-serif";
/// Height of one caption line in pixels.
const CAPTION_LINE: u32 = 18;

/// Series colours, one per model label (colour-blind-safe Okabe-Ito hues).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];
pub(super) const GREY: RGBColor = RGBColor(90, 90, 90);

pub(super) fn colour(slot: usize) -> RGBColor {
    COLOURS[slot % COLOURS.len()]
}

/// Draws a plotters error as text (plotters errors carry the backend's error type).
pub(super) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The chart's frame: `caption` in the footer, `title` on top; returns the area between them.
pub(super) fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    caption: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    footer(root, caption)?
        .margin(12, 0, 0, 0)
        .titled(title, (FONT, 24))
        .map_err(err)
}

/// Splits off the footer and writes the provenance caption into it (wrapped at ` | `).
pub(super) fn footer<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    let (width, height) = root.dim_in_pixel();
    // About 7 px per character at 13 px DejaVu Sans.
    let lines = wrap(caption, (width.saturating_sub(24) / 7) as usize);
    let (main, foot) =
        root.split_vertically(height.saturating_sub(12 + CAPTION_LINE * lines.len() as u32));
    let style = TextStyle::from((FONT, 13).into_font()).color(&GREY);
    for (index, line) in lines.into_iter().enumerate() {
        let y = 6 + (CAPTION_LINE as i32) * index as i32;
        foot.draw(&Text::new(line, (12, y), style.clone()))
            .map_err(err)?;
    }
    Ok(main)
}

/// Splits a caption into lines of at most `max` characters at its ` | ` separators.
pub fn wrap(caption: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in caption.split(" | ") {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 3 + part.chars().count() <= max => {
                line.push_str(" | ");
                line.push_str(part);
            }
            _ => lines.push(part.to_string()),
        }
    }
    lines
}

/// log2 of a concurrency level: the x coordinate of line charts.
fn log2(c: f64) -> f64 {
    c.max(f64::MIN_POSITIVE).log2()
}

/// Draws a line chart against concurrency on a log2 axis.
pub fn line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &LineChart,
) -> Result<(), String> {
    let main = frame(root, &data.title, &data.caption)?;
    let width = main.dim_in_pixel().0;
    let (plot, legend) = main.split_horizontally(width.saturating_sub(legend_width(&data.lines)));
    let first = data.levels.first().copied().unwrap_or(1.0);
    let last = data.levels.last().copied().unwrap_or(1.0);
    let (x0, x1) = (log2(first) - 0.3, log2(last) + 0.3);
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, 0f64..data.y_max)
        .map_err(err)?;
    let levels = data.levels.clone();
    chart
        .configure_mesh()
        .x_desc("concurrency (requests in flight, log2 scale)")
        .y_desc(&data.y_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_labels(((x1 - x0).ceil() as usize + 1).max(2))
        .x_label_formatter(&move |x| {
            // Label only positions that are measured levels.
            levels
                .iter()
                .find(|c| (log2(**c) - x).abs() < 1e-6)
                .map_or(String::new(), |c| format!("{c}"))
        })
        .y_labels(8)
        .y_label_formatter(&|y| format!("{y}"))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    // Lines with error bars each draw theirs a little apart (log2 units; about 10 px on a 1..64
    // axis), so bars of one level do not hide one another; the points stay on the level.
    let with_bars = data.lines.iter().filter(|l| !l.bars.is_empty()).count();
    let mut bar_slot = 0;
    for line in &data.lines {
        let style = colour(line.colour).stroke_width(if line.dashed { 2 } else { 3 });
        let points: Vec<(f64, f64)> = line.points.iter().map(|(c, y)| (log2(*c), *y)).collect();
        if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(err)?;
        }
        if line.markers {
            let fill = colour(line.colour).filled();
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, fill)))
                .map_err(err)?;
        }
        // The level's 95 % interval around its point, capped, in the line's colour.
        if line.bars.is_empty() {
            continue;
        }
        let offset = BAR_SPACING * (bar_slot as f64 - (with_bars as f64 - 1.0) / 2.0);
        bar_slot += 1;
        let bars = line.bars.iter().filter_map(|&(c, lo, hi)| {
            let (_, y) = line.points.iter().find(|p| p.0 == c)?;
            let bar_style = colour(line.colour).stroke_width(2);
            Some(ErrorBar::new_vertical(
                log2(c) + offset,
                lo,
                *y,
                hi,
                bar_style,
                8,
            ))
        });
        chart.draw_series(bars).map_err(err)?;
    }
    draw_legend(&legend, &data.lines)?;
    root.present().map_err(err)
}

/// How far apart, in log2 units of concurrency, the error bars of different lines are drawn.
const BAR_SPACING: f64 = 0.1;

/// Width of the legend column: about 7.5 px per character at 14 px, plus the line sample.
fn legend_width(lines: &[Line]) -> u32 {
    let chars = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0) as u32;
    (chars * 15 / 2 + 60).clamp(140, 380)
}

/// Draws the legend in its own column right of the plot, so it never covers data.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
) -> Result<(), String> {
    for (index, line) in lines.iter().enumerate() {
        let y = 40 + 26 * index as i32;
        let style = colour(line.colour).stroke_width(if line.dashed { 2 } else { 3 });
        let path = vec![(4, y), (40, y)];
        if line.dashed {
            area.draw(&DashedPathElement::new(path, 6, 4, style))
                .map_err(err)?;
        } else {
            area.draw(&PathElement::new(path, style)).map_err(err)?;
        }
        if line.markers {
            area.draw(&Circle::new((22, y), 4, colour(line.colour).filled()))
                .map_err(err)?;
        }
        let text = Text::new(line.name.clone(), (48, y - 8), (FONT, 14).into_font());
        area.draw(&text).map_err(err)?;
    }
    Ok(())
}

/// Draws the cost chart as horizontal bars with the value at each bar's end.
pub fn bar_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &BarChart,
) -> Result<(), String> {
    let main = frame(root, &data.title, &data.caption)?;
    let n = data.bars.len() as i32;
    let max = data.bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let top = super::data::nice_top(max * 1.25);
    let names: Vec<String> = data.bars.iter().map(|b| b.name.clone()).collect();
    // Width of the category labels: about 8 px per character at 14 px DejaVu Sans.
    let label_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(8) as u32 * 8 + 16;
    let mut chart = ChartBuilder::on(&main)
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(label_width.min(420))
        .build_cartesian_2d(0f64..top, segments(n))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&data.x_label)
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 14))
        .x_labels(8)
        .x_label_formatter(&|x| format!("${x:.2}"))
        .y_labels(n as usize)
        .y_label_formatter(&|v| match v {
            // Bar 0 is drawn at the top: segment i shows bar n-1-i.
            SegmentValue::CenterOf(i) if *i >= 0 && *i < n => names[(n - 1 - i) as usize].clone(),
            _ => String::new(),
        })
        .disable_y_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    for (index, bar) in data.bars.iter().enumerate() {
        let row = n - 1 - index as i32;
        let fill = if bar.self_hosted {
            colour(0)
        } else {
            RGBColor(150, 150, 150)
        };
        let mut rect = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row)),
                (bar.value, SegmentValue::Exact(row + 1)),
            ],
            fill.filled(),
        );
        rect.set_margin(6, 6, 0, 0);
        chart.draw_series(std::iter::once(rect)).map_err(err)?;
        // The value just right of the bar's end, vertically centred on the bar.
        let label = EmptyElement::at((bar.value, SegmentValue::CenterOf(row)))
            + Text::new(
                format!("${:.3}", bar.value),
                (6, -8),
                (FONT, 14).into_font(),
            );
        chart.draw_series(std::iter::once(label)).map_err(err)?;
    }
    root.present().map_err(err)
}

/// Segments `0..n` on a category axis (plotters' segmented range would add an empty n+1-th).
fn segments(
    n: i32,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordi32> {
    (0..(n - 1).max(1)).into_segmented()
}

/// Draws the retention chart: one point per task with ± 1 stderr error bars, its value, and
/// the baseline's 100% as a dashed line. Points, not bars: the axis need not start at zero.
pub fn retention_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &RetentionChart,
) -> Result<(), String> {
    let main = frame(root, &data.title, &data.caption)?;
    let n = data.bars.len() as i32;
    let names: Vec<String> = data.bars.iter().map(|b| b.name.clone()).collect();
    let mut chart = ChartBuilder::on(&main)
        .margin(16)
        .margin_right(40)
        .x_label_area_size(52)
        .y_label_area_size(78)
        .build_cartesian_2d(segments(n), data.y_range.0..data.y_range.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("task")
        .y_desc(&data.y_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_labels(n as usize)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i >= 0 && *i < n => names[*i as usize].clone(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y}%"))
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    let full = [
        (SegmentValue::Exact(0), 100.0),
        (SegmentValue::Exact(n), 100.0),
    ];
    chart
        .draw_series(DashedLineSeries::new(full, 8, 5, colour(1).stroke_width(2)))
        .map_err(err)?
        .label("baseline = 100%")
        .legend(|(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 28, y)], 6, 4, colour(1).stroke_width(2))
        });
    for (i, bar) in data.bars.iter().enumerate() {
        let at = (SegmentValue::CenterOf(i as i32), bar.percent);
        let low = bar.percent - bar.stderr;
        let high = bar.percent + bar.stderr;
        let eb = ErrorBar::new_vertical(
            at.0.clone(),
            low,
            bar.percent,
            high,
            BLACK.stroke_width(2),
            18,
        );
        chart.draw_series(std::iter::once(eb)).map_err(err)?;
        chart
            .draw_series(std::iter::once(Circle::new(
                at.clone(),
                7,
                colour(0).filled(),
            )))
            .map_err(err)?;
        let label = EmptyElement::at(at)
            + Text::new(
                format!("{:.1}%", bar.percent),
                (14, -8),
                (FONT, 14).into_font(),
            );
        chart.draw_series(std::iter::once(label)).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FONT, 14))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The x positions of the vertical segments an SVG draws in `rgb` (an error bar's stem).
    fn stems(svg: &str, rgb: &str) -> Vec<i64> {
        svg.lines()
            .filter(|l| l.contains("<line") && l.contains(rgb))
            .filter_map(|l| {
                let attr = |name: &str| -> Option<i64> {
                    let start = l.find(&format!("{name}=\""))? + name.len() + 2;
                    l[start..].split('"').next()?.parse().ok()
                };
                let (x1, x2, y1, y2) = (attr("x1")?, attr("x2")?, attr("y1")?, attr("y2")?);
                (x1 == x2 && y1 != y2).then_some(x1)
            })
            .collect()
    }

    #[test]
    fn bars_of_two_lines_at_one_level_are_drawn_apart() {
        let line = |name: &str, dashed: bool, y: f64| Line {
            name: name.into(),
            points: vec![(1.0, y), (4.0, y)],
            colour: 0,
            dashed,
            markers: true,
            bars: vec![(4.0, y - 10.0, y + 10.0)],
        };
        let data = LineChart {
            title: "t".into(),
            y_label: "ms".into(),
            lines: vec![line("p50", false, 50.0), line("p99", true, 60.0)],
            levels: vec![1.0, 4.0],
            y_max: 100.0,
            caption: String::new(),
        };
        super::super::font::register().expect("bundled font");
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
            line_chart(&root, &data).expect("renders");
        }
        let RGBColor(r, g, b) = colour(0);
        let mut xs = stems(&svg, &format!("#{r:02X}{g:02X}{b:02X}"));
        xs.sort_unstable();
        xs.dedup();
        assert_eq!(xs.len(), 2, "two stems at different x: {xs:?}");
        assert!(xs[1] - xs[0] >= 6, "{xs:?}");
    }
}
