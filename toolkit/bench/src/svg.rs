//! The one SVG writer the charts share (`bench fragment`: throughput
//! against ADU size; `bench contact`: the queue over the month; `bench
//! link`: a bar per route): a document of a given size on white, the
//! elements they draw with every coordinate written the same way and
//! every text escaped, and the helpers for a log-scale axis.

use std::fmt::Write as _;

use deepmail_conformance::xml_escape;

/// Line colours (Okabe-Ito, readable by colour-blind people).
pub(crate) const COLOURS: &[&str] = &[
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Axis labels for a log-scale axis: 1, 2, 5 × powers of ten between
/// `lo` and `hi`, or only the powers of ten when that would be more than
/// eight labels.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo * 0.9999 && t <= hi * 1.0001 {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > 8 {
        ticks.retain(|t| (t.log10() - t.log10().round()).abs() < 1e-9);
    }
    ticks
}

/// An SVG document being written. Coordinates are written with one
/// decimal; `attrs` arguments are further attributes, written as given
/// (` fill="white"`, with the leading space); text is escaped here.
pub(crate) struct Svg {
    out: String,
}

impl Svg {
    /// A `width` × `height` document in sans-serif 12 px, on white.
    pub(crate) fn new(width: f64, height: f64) -> Svg {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
        );
        Svg { out }
    }

    /// Text at (`x`, `y`).
    pub(crate) fn text(&mut self, x: f64, y: f64, attrs: &str, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}"{attrs}>{}</text>"#,
            xml_escape(text)
        );
    }

    /// A rectangle from (`x`, `y`), `width` × `height`.
    pub(crate) fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, attrs: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}"{attrs}/>"#
        );
    }

    /// A line from (`x1`, `y1`) to (`x2`, `y2`).
    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"{attrs}/>"#
        );
    }

    /// A line through `points`, unfilled, with a tooltip when `title` is given.
    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], attrs: &str, title: Option<&str>) {
        let mut path = String::with_capacity(points.len() * 12);
        for (i, (x, y)) in points.iter().enumerate() {
            if i > 0 {
                path.push(' ');
            }
            let _ = write!(path, "{x:.1},{y:.1}");
        }
        let _ = match title {
            Some(t) => writeln!(
                self.out,
                r#"<polyline points="{path}" fill="none"{attrs}><title>{}</title></polyline>"#,
                xml_escape(t)
            ),
            None => writeln!(
                self.out,
                r#"<polyline points="{path}" fill="none"{attrs}/>"#
            ),
        };
    }

    /// A circle of radius `r` around (`cx`, `cy`).
    pub(crate) fn circle(&mut self, cx: f64, cy: f64, r: f64, attrs: &str) {
        let _ = writeln!(
            self.out,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{r}"{attrs}/>"#
        );
    }

    /// Starts a group whose contents are drawn `dx`, `dy` further on; end
    /// it with [`Svg::end_group`].
    pub(crate) fn group(&mut self, dx: f64, dy: f64) {
        let _ = writeln!(self.out, r#"<g transform="translate({dx:.1},{dy:.1})">"#);
    }

    /// Ends the group [`Svg::group`] started.
    pub(crate) fn end_group(&mut self) {
        self.out.push_str("</g>\n");
    }

    /// The finished document.
    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_tags_close() {
        let mut s = Svg::new(100.0, 50.0);
        s.group(10.0, 5.0);
        s.text(1.0, 2.0, r#" text-anchor="end""#, "a < b & \"c\"");
        s.polyline(
            &[(0.0, 0.0), (1.26, 2.0)],
            r#" stroke="red""#,
            Some("x > y"),
        );
        s.polyline(&[(0.0, 0.0)], "", None);
        s.end_group();
        let svg = s.finish();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(
            r#"<text x="1.0" y="2.0" text-anchor="end">a &lt; b &amp; &quot;c&quot;</text>"#
        ));
        assert!(svg.contains(r#"points="0.0,0.0 1.3,2.0" fill="none" stroke="red"><title>x &gt; y</title></polyline>"#));
        assert!(svg.ends_with("</g>\n</svg>\n"));
    }

    #[test]
    fn log_ticks_cover_the_range() {
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(
            log_ticks(1.0, 1e6),
            vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
        );
    }
}
