//! The SVG chart: throughput against ADU size, one line per
//! implementation, MTU and CRC.

use super::*;

/// Escapes text for SVG (XML) content and attributes.
pub(super) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Line colours, one per MTU (Okabe-Ito, readable by colour-blind people).
pub(super) const COLOURS: &[&str] = &[
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Axis labels for a log-scale throughput axis: 1, 2, 5 × powers of ten.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
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

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="26" font-size="17" font-weight="bold" text-anchor="middle">{}</text>"#,
        width / 2.0,
        xml_escape("deepmail bench fragment: fragment throughput against ADU size")
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        s,
        r##"<text x="{:.0}" y="46" text-anchor="middle" fill="#444">{}</text>"##,
        width / 2.0,
        xml_escape(&format!(
            "plugin = {plugin_label}; native = deepmail-bundle; median of >= {} samples, >= {} ms per point; {cores} cores; {} build",
            plan.min_samples,
            plan.min_time.as_millis(),
            if cfg!(debug_assertions) { "debug" } else { "release" }
        ))
    );

    for (p, crc) in plan.crcs.iter().enumerate() {
        let ox = LEFT + p as f64 * (PANEL_W + GAP);
        let _ = writeln!(s, r#"<g transform="translate({ox:.1},{TOP:.1})">"#);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="-10" text-anchor="middle" font-weight="bold">{}</text>"#,
            PLOT_W / 2.0,
            xml_escape(&format!("CRC: {}", crc.name()))
        );
        let _ = writeln!(
            s,
            r##"<rect x="0" y="0" width="{PLOT_W:.1}" height="{PLOT_H:.1}" fill="none" stroke="#888"/>"##
        );
        // Y grid and labels.
        for t in log_ticks(y_lo, y_hi) {
            let y = y_of(t);
            let _ = writeln!(
                s,
                r##"<line x1="0" y1="{y:.1}" x2="{PLOT_W:.1}" y2="{y:.1}" stroke="#ddd"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="-6" y="{:.1}" text-anchor="end">{}</text>"#,
                y + 4.0,
                format_rate(t)
            );
        }
        // X grid and labels, one per measured size.
        for &size in &plan.sizes {
            let x = x_of(size);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{PLOT_H:.1}" stroke="#eee"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                PLOT_H + 16.0,
                xml_escape(&human_bytes(size))
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">ADU size (log scale)</text>"#,
            PLOT_W / 2.0,
            PLOT_H + 38.0
        );
        if p == 0 {
            let _ = writeln!(
                s,
                r#"<text transform="translate(-52,{:.1}) rotate(-90)" text-anchor="middle">fragment throughput, MB/s of ADU (log scale)</text>"#,
                PLOT_H / 2.0
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
                let dash = match implementation {
                    Impl::Native => "",
                    Impl::Plugin => r#" stroke-dasharray="7 4""#,
                };
                let path: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{}</title></polyline>"#,
                    path.join(" "),
                    xml_escape(&format!(
                        "{} MTU {mtu} {}",
                        implementation.name(),
                        crc.name()
                    ))
                );
                for (x, y) in &points {
                    let fill = match implementation {
                        Impl::Native => colour,
                        Impl::Plugin => "white",
                    };
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"#
                    );
                }
            }
        }
        let _ = writeln!(s, "</g>");
    }

    // Legend: colour = MTU, line style = implementation.
    let lx = LEFT + panels as f64 * PANEL_W + (panels - 1) as f64 * GAP + 20.0;
    let _ = writeln!(s, r#"<g transform="translate({lx:.1},{TOP:.1})">"#);
    let _ = writeln!(
        s,
        r#"<text x="0" y="0" font-weight="bold">MTU (bytes)</text>"#
    );
    let mut y = 20.0;
    for (m, &mtu) in plan.mtus.iter().enumerate() {
        let colour = COLOURS[m % COLOURS.len()];
        let _ = writeln!(
            s,
            r#"<line x1="0" y1="{:.1}" x2="28" y2="{:.1}" stroke="{colour}" stroke-width="3"/>"#,
            y - 4.0,
            y - 4.0
        );
        let _ = writeln!(s, r#"<text x="36" y="{y:.1}">{mtu}</text>"#);
        y += 18.0;
    }
    y += 12.0;
    let _ = writeln!(
        s,
        r#"<text x="0" y="{y:.1}" font-weight="bold">implementation</text>"#
    );
    y += 20.0;
    for &implementation in &plan.impls {
        let (dash, fill) = match implementation {
            Impl::Native => ("", "#333"),
            Impl::Plugin => (r#" stroke-dasharray="7 4""#, "white"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="0" y1="{:.1}" x2="28" y2="{:.1}" stroke="#333" stroke-width="2"{dash}/>"##,
            y - 4.0,
            y - 4.0
        );
        let _ = writeln!(
            s,
            r##"<circle cx="14" cy="{:.1}" r="3" fill="{fill}" stroke="#333" stroke-width="1.5"/>"##,
            y - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="36" y="{y:.1}">{}</text>"#,
            implementation.name()
        );
        y += 18.0;
    }
    let failed = cells.iter().filter(|c| c.outcome.is_err()).count();
    if failed > 0 {
        y += 12.0;
        let _ = writeln!(
            s,
            r##"<text x="0" y="{y:.1}" fill="#b00">{failed} failed cell(s) not drawn</text>"##
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, "</svg>");
    s
}
