//! The chart: the Earth queue and messages delivered over the month, the
//! contact windows and the conjunction shaded.

use super::*;

/// Queue length and delivered messages over the month, a line per run;
/// windows shaded, the blackout marked.
pub(super) fn svg(s: &Scenario, results: &[RunResult]) -> String {
    let (left, top, width, height) = (70.0, 50.0, 760.0, 170.0);
    let gap = 60.0;
    let days = s.end / 86_400.0;
    let x = |t: f64| left + t / 86_400.0 / days * width;
    let colors = ["#27ae60", "#c0392b", "#2980b9", "#8e44ad"];
    let max_q = results
        .iter()
        .flat_map(|r| r.samples.iter().map(|x| x.queued))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_d = results
        .iter()
        .flat_map(|r| r.samples.iter().map(|x| x.delivered))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let total_h = top + 2.0 * height + gap + 60.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{total_h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Mail to Mars over {:.0} days: Earth queue and messages delivered (shaded: contact windows; grey: conjunction)</text>\n",
        left + width + 160.0,
        days
    );
    for (y0, label, max) in [
        (top, "queued on Earth", max_q),
        (top + height + gap, "delivered on Mars", max_d),
    ] {
        out.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{y0}\" width=\"{:.1}\" height=\"{height}\" fill=\"#eeeeee\"/>\n",
            x(s.blackout.0.min(s.end)),
            (x(s.blackout.1.min(s.end)) - x(s.blackout.0.min(s.end))).max(0.0)
        ));
        for (o, c) in &s.windows {
            out.push_str(&format!(
                "<rect x=\"{:.2}\" y=\"{y0}\" width=\"{:.2}\" height=\"{height}\" fill=\"#fdebd0\"/>\n",
                x(*o),
                (x(*c) - x(*o)).max(0.3)
            ));
        }
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y0}\" x2=\"{left}\" y2=\"{yb}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"black\"/>\n<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max:.0}</text>\n<text x=\"{tx}\" y=\"{yb}\" text-anchor=\"end\">0</text>\n<text x=\"{left}\" y=\"{lt}\">{label} (messages)</text>\n",
            yb = y0 + height,
            xr = left + width,
            tx = left - 6.0,
            ty = y0 + 10.0,
            lt = y0 - 6.0
        ));
        for d in (0..=days as u64).step_by(5) {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">day {d}</text>\n",
                x(d as f64 * 86_400.0),
                y0 + height + 15.0
            ));
        }
        for (i, r) in results.iter().enumerate() {
            let step = (r.samples.len() / 1500).max(1);
            let points: Vec<String> = r
                .samples
                .iter()
                .step_by(step)
                .map(|p| {
                    let v = if label.starts_with("queued") {
                        p.queued
                    } else {
                        p.delivered
                    } as f64;
                    format!("{:.1},{:.1}", x(p.t), y0 + height - v / max * height)
                })
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                colors[i % colors.len()],
                points.join(" ")
            ));
        }
    }
    for (i, r) in results.iter().enumerate() {
        out.push_str(&format!(
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text>\n",
            left + width + 15.0,
            top + 20.0 + i as f64 * 18.0,
            colors[i % colors.len()],
            left + width + 35.0,
            top + 25.0 + i as f64 * 18.0,
            if r.kind == RunKind::Plan { "with the contact plan" } else { "baseline (no plan)" }
        ));
    }
    out.push_str("</svg>\n");
    out
}
