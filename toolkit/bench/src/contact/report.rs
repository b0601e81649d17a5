//! What a run measured, summarised: returns, utilisation, first bytes,
//! percentiles and the table.

use super::*;

/// The ids of the messages returned to Earth: (expired, `4.4.7`; bounced,
/// any other failure), from the DSNs the Earth MTA received.
pub(super) fn returns(earth_mta: &Sink) -> (HashSet<usize>, HashSet<usize>) {
    let mut expired = HashSet::new();
    let mut bounced = HashSet::new();
    for (_, c, _) in earth_mta
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let text = String::from_utf8_lossy(c);
        if !text.contains("Action: failed") {
            continue;
        }
        let Some(id) = bench_id(c) else { continue };
        if text.contains("Status: 4.4.7") {
            expired.insert(id);
        } else {
            bounced.insert(id);
        }
    }
    (expired, bounced)
}

/// Bytes delivered to Mars at real time `t` (interpolated).
pub(super) fn out_at(samples: &[Sample], t: f64) -> f64 {
    let i = samples.partition_point(|x| x.t <= t);
    match (i.checked_sub(1).map(|j| samples[j]), samples.get(i)) {
        (Some(a), Some(b)) if b.t > a.t => {
            a.bytes_out as f64 + (b.bytes_out - a.bytes_out) as f64 * (t - a.t) / (b.t - a.t)
        }
        (Some(a), _) => a.bytes_out as f64,
        (None, _) => 0.0,
    }
}

/// Link bytes carried while there was mail to carry and a window open,
/// over what the windows could carry then. There is mail to carry while
/// the Earth gateway holds bytes not yet on their way, or the link holds
/// bytes handed to it and not yet transmitted. A byte transmitted at `t`
/// reaches Mars a light time later, so deliveries are read one light time
/// on.
pub(super) fn utilisation(s: &Scenario, samples: &[Sample]) -> Option<f64> {
    let rate = s.rate as f64 / s.volume;
    let (mut carried, mut capacity) = (0.0, 0.0);
    for w in samples.windows(2) {
        let (a, b) = (w[0], w[1]);
        let backlog = a.bytes_in as f64 - out_at(samples, a.t + s.owlt);
        if (a.waiting == 0 && backlog < 1500.0) || !s.open_at(a.t) || !s.open_at(b.t) {
            continue;
        }
        capacity += rate * (b.t - a.t);
        carried += out_at(samples, b.t + s.owlt) - out_at(samples, a.t + s.owlt);
    }
    (capacity > 0.0).then(|| carried / capacity)
}

/// For each window that opened with mail waiting, wall-clock ms from the
/// opening to the first kilobyte Earth handed to the link.
pub(super) fn first_bytes(s: &Scenario, samples: &[Sample]) -> Vec<f64> {
    let mut out = Vec::new();
    for (open, close) in &s.windows {
        let i = samples.partition_point(|x| x.t < *open);
        let Some(first) = samples.get(i) else { break };
        if first.waiting == 0 {
            continue;
        }
        let base = i
            .checked_sub(1)
            .map_or(first.bytes_in, |j| samples[j].bytes_in);
        if let Some(x) = samples[i..]
            .iter()
            .take_while(|x| x.t < *close)
            .find(|x| x.bytes_in >= base + 1024)
        {
            out.push((x.t - open).max(0.0) / s.scale * 1000.0);
        }
    }
    out
}

/// The nearest-rank percentile `p` (0..=100) of `sorted`.
pub(super) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// A row of the table: how to print one run's value.
pub(super) type Cell = Box<dyn Fn(&RunResult) -> String>;

/// Hours, one decimal.
pub(super) fn hours(secs: Option<f64>) -> String {
    secs.map_or("-".into(), |s| format!("{:.1} h", s / 3600.0))
}

pub(super) fn report(
    args: &ContactBenchArgs,
    s: &Scenario,
    load: &[Planned],
    results: &[RunResult],
) -> Result<(), BenchError> {
    let by_id: HashMap<usize, &Planned> = load.iter().map(|p| (p.id, p)).collect();
    let groups = |r: &RunResult| {
        let mut g: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (id, d) in &r.delays {
            let p = by_id[id];
            g.entry(format!("priority {}", PRIORITIES[p.priority].0))
                .or_default()
                .push(*d);
            g.entry(format!("size {}", CLASSES[p.class].0))
                .or_default()
                .push(*d);
            g.entry("all".into()).or_default().push(*d);
            if p.at < s.blackout.0 || p.at >= s.blackout.1 {
                g.entry("arrived outside the blackout".into())
                    .or_default()
                    .push(*d);
            }
        }
        for v in g.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        g
    };
    let run_json = |r: &RunResult| {
        let mut fb = r.first_byte_ms.clone();
        fb.sort_by(f64::total_cmp);
        json!({
            "run": r.kind.name(),
            "sent": r.sent,
            "delivered": r.delivered,
            "lost": r.lost,
            "expired": r.expired,
            "bounced": r.bounced,
            "still_queued": r.still_queued,
            "duplicates": r.duplicates,
            "delay_warnings": r.delay_warnings,
            "window_utilisation_while_queued": r.utilisation,
            "open_to_first_byte_ms": { "median": percentile(&fb, 50.0), "max": fb.last(), "windows": fb.len() },
            "delivery_hours": groups(r).iter().map(|(k, v)| (k.clone(), json!({
                "count": v.len(),
                "p50": percentile(v, 50.0).map(|x| x / 3600.0),
                "p90": percentile(v, 90.0).map(|x| x / 3600.0),
                "p99": percentile(v, 99.0).map(|x| x / 3600.0),
                "max": v.last().map(|x| x / 3600.0),
            }))).collect::<serde_json::Map<_, _>>(),
            "peak_queue": r.peak_queue,
            "attempts_failed": r.attempts_failed,
            "bp_batches_cut": r.cut,
            "link_bytes_per_message_byte": (r.message_bytes > 0).then(|| r.link_bytes as f64 / r.message_bytes as f64),
            "link_bytes": r.link_bytes,
            "message_bytes_delivered": r.message_bytes,
            "peak_rss_kib": r.peak_rss_kib,
            "wall_secs": r.wall.as_secs_f64(),
        })
    };
    let doc = json!({
        "scenario": {
            "sols": args.sols,
            "windows_per_sol": args.windows_per_sol,
            "window_hours": args.window_hours,
            "rate_bps": args.rate_bps,
            "owlt_secs": s.owlt,
            "blackout_sols": [args.blackout_start, args.blackout_start + args.blackout_sols],
            "load": args.load,
            "scale": s.scale,
            "volume_scale": s.volume,
            "emulated_rate_bytes_per_sec": s.emulated_rate(),
            "messages": load.len(),
            "seed": args.seed,
        },
        "runs": results.iter().map(run_json).collect::<Vec<_>>(),
    });
    crate::output::write_json(args.json.as_deref(), &doc)?;
    if args.json.as_deref() != Some("-") {
        println!(
            "{} sols of mail to Mars: {} windows of {} h a sol at {} kbit/s, light time {:.1} min, blackout sols {}-{}; {} messages ({} of the real traffic), time {}x faster",
            args.sols,
            args.windows_per_sol,
            args.window_hours,
            args.rate_bps / 1000,
            s.owlt / 60.0,
            args.blackout_start,
            args.blackout_start + args.blackout_sols,
            load.len(),
            format_args!("1/{}", s.volume),
            s.scale
        );
        let cell = |r: &RunResult, f: &dyn Fn(&RunResult) -> String| f(r);
        let rows: Vec<(&str, Cell)> = vec![
            (
                "delivered",
                Box::new(|r| format!("{} of {}", r.delivered, r.sent)),
            ),
            ("lost", Box::new(|r| r.lost.to_string())),
            (
                "expired (returned, 4.4.7)",
                Box::new(|r| r.expired.to_string()),
            ),
            ("bounced", Box::new(|r| r.bounced.to_string())),
            (
                "still queued at the end",
                Box::new(|r| r.still_queued.to_string()),
            ),
            ("delivered twice", Box::new(|r| r.duplicates.to_string())),
            ("delay warnings", Box::new(|r| r.delay_warnings.to_string())),
            (
                "window utilisation while mail is queued",
                Box::new(|r| {
                    r.utilisation
                        .map_or("-".into(), |u| format!("{:.1} %", u * 100.0))
                }),
            ),
            (
                "window open to first byte (median / max, wall ms)",
                Box::new(|r| {
                    let mut v = r.first_byte_ms.clone();
                    v.sort_by(f64::total_cmp);
                    match (percentile(&v, 50.0), v.last()) {
                        (Some(m), Some(x)) => format!("{m:.0} / {x:.0} ms ({} windows)", v.len()),
                        _ => "-".into(),
                    }
                }),
            ),
            (
                "peak queue (messages)",
                Box::new(|r| r.peak_queue.to_string()),
            ),
            (
                "attempts failed / BP batches cut",
                Box::new(|r| format!("{} / {}", r.attempts_failed, r.cut)),
            ),
            (
                "link bytes per message byte",
                Box::new(|r| {
                    if r.message_bytes == 0 {
                        "-".into()
                    } else {
                        format!("{:.3}", r.link_bytes as f64 / r.message_bytes as f64)
                    }
                }),
            ),
            (
                "peak RSS (bench process: both gateways, link)",
                Box::new(|r| {
                    r.peak_rss_kib
                        .map_or("-".into(), |k| format!("{} MiB", k / 1024))
                }),
            ),
        ];
        print!("  {:<52}", "");
        for r in results {
            print!(" {:>26}", r.kind.name());
        }
        println!();
        for (label, f) in &rows {
            print!("  {label:<52}");
            for r in results {
                print!(" {:>26}", cell(r, f.as_ref()));
            }
            println!();
        }
        println!("  delivery time, real (p50 / p90 / max):");
        let all: Vec<BTreeMap<String, Vec<f64>>> = results.iter().map(groups).collect();
        let mut keys: Vec<String> = all.iter().flat_map(|g| g.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            print!("    {k:<50}");
            for g in &all {
                let v = g.get(&k).map(Vec::as_slice).unwrap_or(&[]);
                print!(
                    " {:>26}",
                    format!(
                        "{} / {} / {}",
                        hours(percentile(v, 50.0)),
                        hours(percentile(v, 90.0)),
                        hours(v.last().copied())
                    )
                );
            }
            println!();
        }
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(s, results)).map_err(BenchError::io("writing", path))?;
    }
    if let Some(path) = &args.samples {
        let mut csv =
            String::from("run,real_secs,bytes_in,bytes_out,queued,waiting_bytes,delivered\n");
        for r in results {
            for x in &r.samples {
                csv.push_str(&format!(
                    "{},{:.1},{},{},{},{},{}\n",
                    r.kind.name(),
                    x.t,
                    x.bytes_in,
                    x.bytes_out,
                    x.queued,
                    x.waiting,
                    x.delivered
                ));
            }
        }
        std::fs::write(path, csv).map_err(BenchError::io("writing", path))?;
    }
    Ok(())
}
