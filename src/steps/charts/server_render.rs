//! Draws a server-view chart: stacked panels on one time axis, a dashed line at each level's
//! start labelled with its concurrency, and the legend in a column right of the panels.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::render::{FONT, GREY, colour, err, frame};
use super::server_data::{Panel, ServerChart};

/// Width of the legend column in pixels.
const LEGEND_WIDTH: u32 = 200;
/// Height of the x axis labels and description under the bottom panel.
const X_LABELS: u32 = 48;

/// Draws `data` onto `root`.
pub fn server_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &ServerChart,
) -> Result<(), String> {
    let main = frame(root, &data.title, &data.caption)?;
    let width = main.dim_in_pixel().0;
    let (plots, legend) = main.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
    let count = data.panels.len().max(1);
    // Equal plot heights: the bottom panel also holds the x axis labels.
    let height = plots.dim_in_pixel().1.saturating_sub(X_LABELS) as usize / count;
    let breaks: Vec<i32> = (1..count).map(|i| (i * height) as i32).collect();
    let areas = plots.split_by_breakpoints(Vec::<i32>::new(), breaks);
    for (index, (panel, area)) in data.panels.iter().zip(&areas).enumerate() {
        draw_panel(area, data, panel, index == 0, index + 1 == count)?;
    }
    draw_legend(&legend, &data.panels)?;
    root.present().map_err(err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &ServerChart,
    panel: &Panel,
    top: bool,
    bottom: bool,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(16)
        .margin_top(if top { 22 } else { 6 })
        .x_label_area_size(if bottom { X_LABELS } else { 0 })
        .y_label_area_size(78)
        .build_cartesian_2d(0f64..data.x_max, 0f64..panel.y_max)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(&panel.y_label)
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 13))
        .y_labels(4)
        .x_labels(10)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215));
    if bottom {
        mesh.x_desc(&data.x_label);
    }
    mesh.draw().map_err(err)?;
    for &(x, c) in &data.boundaries {
        let line = [(x, 0.0), (x, panel.y_max)];
        chart
            .draw_series(DashedLineSeries::new(line, 6, 4, GREY.stroke_width(1)))
            .map_err(err)?;
        if top {
            let label = EmptyElement::at((x, panel.y_max))
                + Text::new(format!("c={c}"), (4, -18), (FONT, 13).into_font());
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }
    for trace in &panel.traces {
        let style = colour(trace.colour).stroke_width(2);
        for segment in &trace.segments {
            chart
                .draw_series(LineSeries::new(segment.iter().copied(), style))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// One legend entry per trace of every panel, top to bottom.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> Result<(), String> {
    let traces = panels.iter().flat_map(|p| &p.traces);
    for (index, trace) in traces.enumerate() {
        let y = 40 + 26 * index as i32;
        let style = colour(trace.colour).stroke_width(2);
        area.draw(&PathElement::new(vec![(4, y), (40, y)], style))
            .map_err(err)?;
        let text = Text::new(trace.name.clone(), (48, y - 8), (FONT, 14).into_font());
        area.draw(&text).map_err(err)?;
    }
    let y = 40 + 26 * panels.iter().map(|p| p.traces.len()).sum::<usize>() as i32;
    let dashed = DashedPathElement::new(vec![(4, y), (40, y)], 6, 4, GREY.stroke_width(1));
    area.draw(&dashed).map_err(err)?;
    let text = Text::new("level start", (48, y - 8), (FONT, 14).into_font());
    area.draw(&text).map_err(err)
}
