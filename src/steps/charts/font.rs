//! The bundled font: DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`),
//! compiled into the binary and registered with plotters' ab_glyph text renderer, so charts
//! render the same on every machine and need no system fonts or fontconfig.

use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

/// DejaVu Sans 2.37 (Debian `fonts-dejavu-core`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font as plotters' `sans-serif` family (once per process).
pub fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS)
            .map_err(|_| "the bundled DejaVu Sans font is not a valid TrueType file".to_string())
    })
    .clone()
}
