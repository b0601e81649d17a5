//! The chart: the Earth queue and messages delivered over the month, the
//! contact windows and the conjunction shaded, drawn with the shared
//! [`Svg`] writer.

use super::*;
use crate::svg::Svg;

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
    let mut out = Svg::new(left + width + 160.0, top + 2.0 * height + gap + 60.0);
    out.text(
        10.0,
        22.0,
        r#" font-size="15" font-weight="bold""#,
        &format!("Mail to Mars over {days:.0} days: Earth queue and messages delivered (shaded: contact windows; grey: conjunction)"),
    );
    for (y0, label, max) in [
        (top, "queued on Earth", max_q),
        (top + height + gap, "delivered on Mars", max_d),
    ] {
        let (b0, b1) = (x(s.blackout.0.min(s.end)), x(s.blackout.1.min(s.end)));
        out.rect(b0, y0, (b1 - b0).max(0.0), height, r##" fill="#eeeeee""##);
        for (o, c) in &s.windows {
            out.rect(
                x(*o),
                y0,
                (x(*c) - x(*o)).max(0.3),
                height,
                r##" fill="#fdebd0""##,
            );
        }
        let yb = y0 + height;
        out.line((left, y0), (left, yb), r#" stroke="black""#);
        out.line((left, yb), (left + width, yb), r#" stroke="black""#);
        out.text(
            left - 6.0,
            y0 + 10.0,
            r#" text-anchor="end""#,
            &format!("{max:.0}"),
        );
        out.text(left - 6.0, yb, r#" text-anchor="end""#, "0");
        out.text(left, y0 - 6.0, "", &format!("{label} (messages)"));
        for d in (0..=days as u64).step_by(5) {
            out.text(
                x(d as f64 * 86_400.0),
                yb + 15.0,
                r#" text-anchor="middle""#,
                &format!("day {d}"),
            );
        }
        for (i, r) in results.iter().enumerate() {
            let step = (r.samples.len() / 1500).max(1);
            let points: Vec<(f64, f64)> = r
                .samples
                .iter()
                .step_by(step)
                .map(|p| {
                    let v = if label.starts_with("queued") {
                        p.queued
                    } else {
                        p.delivered
                    } as f64;
                    (x(p.t), yb - v / max * height)
                })
                .collect();
            out.polyline(
                &points,
                &format!(
                    r#" stroke="{}" stroke-width="1.5""#,
                    colors[i % colors.len()]
                ),
                None,
            );
        }
    }
    for (i, r) in results.iter().enumerate() {
        let y = top + 20.0 + i as f64 * 18.0;
        out.rect(
            left + width + 15.0,
            y,
            14.0,
            4.0,
            &format!(r#" fill="{}""#, colors[i % colors.len()]),
        );
        out.text(
            left + width + 35.0,
            y + 5.0,
            "",
            if r.kind == RunKind::Plan {
                "with the contact plan"
            } else {
                "baseline (no plan)"
            },
        );
    }
    out.finish()
}
