//! The SVG chart: throughput against ADU size, one line per
//! implementation, MTU and CRC, drawn with the shared [`Svg`] writer.

use super::*;
use crate::svg::{log_ticks, Svg, COLOURS};

/// A throughput axis label: whole MB/s, or the fraction below 1.
pub(super) fn format_rate(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The chart: one panel per CRC type, fragment throughput (log scale)
/// against ADU size (log scale), one line per implementation × MTU.
pub(super) fn render_svg(cells: &[Cell], plan: &Plan, plugin_label: &str) -> String {
    const PANEL_W: f64 = 480.0;
    const PANEL_H: f64 = 340.0;
    const LEFT: f64 = 78.0;
    const TOP: f64 = 78.0;
    const GAP: f64 = 40.0;
    const PLOT_W: f64 = PANEL_W - 20.0;
    const PLOT_H: f64 = PANEL_H - 60.0;
    const LEGEND_W: f64 = 190.0;

    let panels = plan.crcs.len().max(1);
    let width = LEFT + panels as f64 * PANEL_W + (panels - 1) as f64 * GAP + LEGEND_W;
    let height = TOP + PANEL_H + 30.0;

    let rates: Vec<f64> = cells
        .iter()
        .filter_map(|c| {
            c.outcome
                .as_ref()
                .ok()
                .map(|m| m.fragment.mb_per_s(c.adu_bytes))
        })
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    let (mut y_lo, mut y_hi) = rates.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
        (lo.min(*r), hi.max(*r))
    });
    if rates.is_empty() {
        (y_lo, y_hi) = (1.0, 1000.0);
    }
    // Whole decades around the data.
    y_lo = 10f64.powf(y_lo.log10().floor());
    y_hi = 10f64.powf(y_hi.log10().ceil());
    if y_hi <= y_lo {
        y_hi = y_lo * 10.0;
    }
    let (x_lo, x_hi) = {
        let lo = plan.sizes.first().copied().unwrap_or(1) as f64;
        let hi = plan.sizes.last().copied().unwrap_or(1) as f64;
        if hi > lo {
            (lo.log2(), hi.log2())
        } else {
            (lo.log2() - 1.0, lo.log2() + 1.0)
        }
    };
    let x_of =
        |bytes: u64| (((bytes as f64).log2() - x_lo) / (x_hi - x_lo)) * (PLOT_W - 30.0) + 15.0;
    let y_of =
        |rate: f64| PLOT_H - (rate.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * PLOT_H;

    let mut s = Svg::new(width, height);
    s.text(
        width / 2.0,
        26.0,
        r#" font-size="17" font-weight="bold" text-anchor="middle""#,
        "deepmail bench fragment: fragment throughput against ADU size",
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    s.text(
        width / 2.0,
        46.0,
        r##" text-anchor="middle" fill="#444""##,
        &format!(
            "plugin = {plugin_label}; native = deepmail-bundle; median of >= {} samples, >= {} ms per point; {cores} cores; {} build",
            plan.min_samples,
            plan.min_time.as_millis(),
            if cfg!(debug_assertions) { "debug" } else { "release" }
        ),
    );

    for (p, crc) in plan.crcs.iter().enumerate() {
        s.group(LEFT + p as f64 * (PANEL_W + GAP), TOP);
        s.text(
            PLOT_W / 2.0,
            -10.0,
            r#" text-anchor="middle" font-weight="bold""#,
            &format!("CRC: {}", crc.name()),
        );
        s.rect(0.0, 0.0, PLOT_W, PLOT_H, r##" fill="none" stroke="#888""##);
        // Y grid and labels.
        for t in log_ticks(y_lo, y_hi) {
            let y = y_of(t);
            s.line((0.0, y), (PLOT_W, y), r##" stroke="#ddd""##);
            s.text(-6.0, y + 4.0, r#" text-anchor="end""#, &format_rate(t));
        }
        // X grid and labels, one per measured size.
        for &size in &plan.sizes {
            let x = x_of(size);
            s.line((x, 0.0), (x, PLOT_H), r##" stroke="#eee""##);
            s.text(
                x,
                PLOT_H + 16.0,
                r#" text-anchor="middle""#,
                &human_bytes(size),
            );
        }
        s.text(
            PLOT_W / 2.0,
            PLOT_H + 38.0,
            r#" text-anchor="middle""#,
            "ADU size (log scale)",
        );
        if p == 0 {
            s.text(
                0.0,
                0.0,
                &format!(
                    r#" transform="translate(-52,{:.1}) rotate(-90)" text-anchor="middle""#,
                    PLOT_H / 2.0
                ),
                "fragment throughput, MB/s of ADU (log scale)",
            );
        }
        for (m, &mtu) in plan.mtus.iter().enumerate() {
            let colour = COLOURS[m % COLOURS.len()];
            for &implementation in &plan.impls {
                let points: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|c| c.crc == *crc && c.mtu == mtu && c.implementation == implementation)
                    .filter_map(|c| {
                        let m = c.outcome.as_ref().ok()?;
                        let rate = m.fragment.mb_per_s(c.adu_bytes);
                        (rate.is_finite() && rate > 0.0).then(|| (x_of(c.adu_bytes), y_of(rate)))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let (dash, fill) = match implementation {
                    Impl::Native => ("", colour),
                    Impl::Plugin => (r#" stroke-dasharray="7 4""#, "white"),
                };
                s.polyline(
                    &points,
                    &format!(r#" stroke="{colour}" stroke-width="2"{dash}"#),
                    Some(&format!(
                        "{} MTU {mtu} {}",
                        implementation.name(),
                        crc.name()
                    )),
                );
                for &(x, y) in &points {
                    s.circle(
                        x,
                        y,
                        3.0,
                        &format!(r#" fill="{fill}" stroke="{colour}" stroke-width="1.5""#),
                    );
                }
            }
        }
        s.end_group();
    }

    // Legend: colour = MTU, line style = implementation.
    s.group(
        LEFT + panels as f64 * PANEL_W + (panels - 1) as f64 * GAP + 20.0,
        TOP,
    );
    s.text(0.0, 0.0, r#" font-weight="bold""#, "MTU (bytes)");
    let mut y = 20.0;
    for (m, &mtu) in plan.mtus.iter().enumerate() {
        let colour = COLOURS[m % COLOURS.len()];
        s.line(
            (0.0, y - 4.0),
            (28.0, y - 4.0),
            &format!(r#" stroke="{colour}" stroke-width="3""#),
        );
        s.text(36.0, y, "", &mtu.to_string());
        y += 18.0;
    }
    y += 12.0;
    s.text(0.0, y, r#" font-weight="bold""#, "implementation");
    y += 20.0;
    for &implementation in &plan.impls {
        let (dash, fill) = match implementation {
            Impl::Native => ("", "#333"),
            Impl::Plugin => (r#" stroke-dasharray="7 4""#, "white"),
        };
        s.line(
            (0.0, y - 4.0),
            (28.0, y - 4.0),
            &format!(r##" stroke="#333" stroke-width="2"{dash}"##),
        );
        s.circle(
            14.0,
            y - 4.0,
            3.0,
            &format!(r##" fill="{fill}" stroke="#333" stroke-width="1.5""##),
        );
        s.text(36.0, y, "", implementation.name());
        y += 18.0;
    }
    let failed = cells.iter().filter(|c| c.outcome.is_err()).count();
    if failed > 0 {
        y += 12.0;
        s.text(
            0.0,
            y,
            r##" fill="#b00""##,
            &format!("{failed} failed cell(s) not drawn"),
        );
    }
    s.end_group();
    s.finish()
}
