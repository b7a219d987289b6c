//! The charts the report shows: SVGs the charts step drew, linked and inlined.

use std::path::Path;

use super::CHARTS;
use super::context::ChartRef;

/// The five canonical charts present in the charts directory, in canonical order.
pub fn charts(
    workspace: &Path,
    dir: Option<&Path>,
    link: &dyn Fn(&Path) -> String,
) -> Vec<ChartRef> {
    let Some(dir) = dir else { return Vec::new() };
    CHARTS
        .iter()
        .filter_map(|name| chart_ref(workspace, dir, name, link))
        .collect()
}

/// The chart `<name>.svg` in the charts directory, or `None` when it was not drawn.
pub fn chart_ref(
    workspace: &Path,
    dir: &Path,
    name: &str,
    link: &dyn Fn(&Path) -> String,
) -> Option<ChartRef> {
    let svg_path = dir.join(format!("{name}.svg"));
    let svg = std::fs::read_to_string(workspace.join(&svg_path)).ok()?;
    // Drop the XML declaration so the SVG can sit inside HTML.
    let inline_svg = svg
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|rest| {
            rest.split_once("?>")
                .map(|(_, body)| body.trim_start().to_string())
        })
        .unwrap_or(svg);
    Some(ChartRef {
        name: name.to_string(),
        png: link(&dir.join(format!("{name}.png"))),
        svg: link(&svg_path),
        inline_svg,
    })
}
