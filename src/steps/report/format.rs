//! Number and path formatting for the report (pre-formatted in Rust so templates stay simple).

use std::path::{Component, Path, PathBuf};

/// USD with enough digits for per-1M-token prices: `$0.227`, `$1.30`, `$341.64`.
pub fn usd(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("${v:.3}")
    } else {
        format!("${}", grouped(v, 2))
    }
}

/// A token volume in millions with thousands separators: `1,138.8M`.
pub fn mtok(tokens: f64) -> String {
    format!("{}M", grouped(tokens / 1e6, 1))
}

/// A ratio as a percentage: `94.3%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A figure with `decimals` decimals and `,` thousands separators.
pub fn grouped(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    if v < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    out
}

/// A plain number with `decimals` decimals, or `-` when absent.
pub fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// A price ratio (`2.40x`), or `-` when absent.
pub fn opt_ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}x"))
}

/// `target` relative to the directory `from`, both relative to the same root, with `/`
/// separators (for Markdown and HTML links). Hand-written: it is lexical only, a dozen lines.
pub fn relative_link(from: &Path, target: &Path) -> String {
    let parts = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let (from, target) = (parts(from), parts(target));
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut link: Vec<String> = vec!["..".into(); from.len() - common];
    link.extend(target[common..].iter().cloned());
    link.join("/")
}

/// The default report directory for a profile: `results/<profile>`.
pub fn default_report_dir(profile: &str) -> PathBuf {
    Path::new("results").join(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(usd(0.226_85), "$0.227");
        assert_eq!(usd(341.64), "$341.64");
        assert_eq!(usd(12_345.678), "$12,345.68");
        assert_eq!(mtok(1_138_800_000.0), "1,138.8M");
        assert_eq!(mtok(5_694_000_000.0), "5,694.0M");
        assert_eq!(percent(0.942_966), "94.3%");
        assert_eq!(grouped(-1234.5, 1), "-1,234.5");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(opt(None, 1), "-");
        assert_eq!(opt(Some(352.84), 1), "352.8");
    }

    #[test]
    fn links() {
        let from = Path::new("results/a5000");
        assert_eq!(
            relative_link(from, Path::new("results/a5000/cost/cost.json")),
            "cost/cost.json"
        );
        assert_eq!(
            relative_link(from, Path::new("pricing/openai.toml")),
            "../../pricing/openai.toml"
        );
        assert_eq!(
            relative_link(Path::new(""), Path::new("x/y.json")),
            "x/y.json"
        );
    }
}
