//! Turns comparisons into a table, Markdown, JSON and an SVG plot.

use std::fmt::Write as _;

use serde::Serialize;

use crate::harness::{Comparison, Config};
use crate::machine::Machine;
use crate::stats::{median, quantile};
use crate::workloads::{grouped, Sample, Workload};

/// Everything one run of the runner produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where the figures come from.
    pub machine: Machine,
    /// How they were taken.
    pub run: RunInfo,
    /// One entry per workload, in run order.
    pub workloads: Vec<WorkloadReport>,
}

/// The settings of the run.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// Pairs per scheduler workload.
    pub samples: usize,
    /// Pairs per seed round trip workload.
    pub seed_samples: usize,
    /// Warm-up per scheduler workload, milliseconds.
    pub warmup_ms: f64,
    /// Target duration of a scheduler sample, milliseconds.
    pub sample_time_ms: f64,
    /// The runner's arguments.
    pub args: Vec<String>,
}

impl RunInfo {
    /// Records `config` and the command-line arguments.
    pub fn new(config: &Config, args: Vec<String>) -> Self {
        Self {
            workers: config.workers,
            samples: config.samples,
            seed_samples: config.seed_samples,
            warmup_ms: config.warmup.as_secs_f64() * 1e3,
            sample_time_ms: config.sample_time.as_secs_f64() * 1e3,
            args,
        }
    }
}

/// The figures for one workload. Times are per repetition of the workload,
/// in nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// Workload name.
    pub name: String,
    /// What one repetition is.
    pub unit: String,
    /// Repetitions timed together in each sample.
    pub reps_per_sample: u64,
    /// Number of (wq, tokio) pairs.
    pub pairs: usize,
    /// Median wq time per repetition.
    pub wq_median_ns: f64,
    /// Median tokio time per repetition.
    pub tokio_median_ns: f64,
    /// Median of the per-pair wq/tokio ratios (< 1.0: wq faster).
    pub ratio_median: f64,
    /// 25th percentile of the per-pair ratios.
    pub ratio_p25: f64,
    /// 75th percentile of the per-pair ratios.
    pub ratio_p75: f64,
    /// Every wq sample, per repetition.
    pub wq_samples_ns: Vec<f64>,
    /// Every tokio sample, per repetition.
    pub tokio_samples_ns: Vec<f64>,
    /// Every per-pair ratio.
    pub ratios: Vec<f64>,
    /// Throughput and spawn latency, for the seed round trip.
    pub seed: Option<SeedReport>,
}

/// Seed round trip figures. Throughput is taken from the median run time;
/// latency percentiles are per run (over all its items), then the median
/// across runs.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    /// Producer threads.
    pub producers: usize,
    /// Items in one run, all producers together.
    pub items: usize,
    /// wq round trips per second.
    pub wq_items_per_s: f64,
    /// tokio round trips per second.
    pub tokio_items_per_s: f64,
    /// wq spawn-call latency, median.
    pub wq_spawn_p50_ns: f64,
    /// wq spawn-call latency, 95th percentile.
    pub wq_spawn_p95_ns: f64,
    /// tokio spawn-call latency, median.
    pub tokio_spawn_p50_ns: f64,
    /// tokio spawn-call latency, 95th percentile.
    pub tokio_spawn_p95_ns: f64,
}

impl WorkloadReport {
    /// Summarises one comparison.
    pub fn new(comparison: &Comparison) -> Self {
        let per_rep_ns = |samples: &[Sample]| -> Vec<f64> {
            samples
                .iter()
                .map(|s| s.per_rep().as_secs_f64() * 1e9)
                .collect()
        };
        let wq_samples_ns = per_rep_ns(&comparison.wq);
        let tokio_samples_ns = per_rep_ns(&comparison.tokio);
        let ratios = comparison.ratios();
        let workload = comparison.workload;

        let seed = match workload {
            Workload::SeedRoundTrip { producers, items } => {
                let total = producers * items;
                let latency = |samples: &[Sample], p95: bool| -> f64 {
                    let values: Vec<f64> = samples
                        .iter()
                        .filter_map(|s| s.spawn_latency)
                        .map(|l| if p95 { l.p95 } else { l.p50 }.as_secs_f64() * 1e9)
                        .collect();
                    median(&values)
                };
                Some(SeedReport {
                    producers,
                    items: total,
                    wq_items_per_s: total as f64 / (median(&wq_samples_ns) / 1e9),
                    tokio_items_per_s: total as f64 / (median(&tokio_samples_ns) / 1e9),
                    wq_spawn_p50_ns: latency(&comparison.wq, false),
                    wq_spawn_p95_ns: latency(&comparison.wq, true),
                    tokio_spawn_p50_ns: latency(&comparison.tokio, false),
                    tokio_spawn_p95_ns: latency(&comparison.tokio, true),
                })
            }
            _ => None,
        };

        Self {
            name: workload.name(),
            unit: workload.unit(),
            reps_per_sample: comparison.reps,
            pairs: ratios.len(),
            wq_median_ns: median(&wq_samples_ns),
            tokio_median_ns: median(&tokio_samples_ns),
            ratio_median: median(&ratios),
            ratio_p25: quantile(&ratios, 0.25),
            ratio_p75: quantile(&ratios, 0.75),
            wq_samples_ns,
            tokio_samples_ns,
            ratios,
            seed,
        }
    }
}

/// Formats nanoseconds with three significant digits and a fitting unit.
pub fn fmt_ns(ns: f64) -> String {
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", three_digits(value))
}

/// Formats a rate (per second) with three significant digits.
pub fn fmt_rate(per_s: f64) -> String {
    let (value, unit) = if per_s >= 1e6 {
        (per_s / 1e6, "M/s")
    } else if per_s >= 1e3 {
        (per_s / 1e3, "k/s")
    } else {
        (per_s, "/s")
    };
    format!("{} {unit}", three_digits(value))
}

/// Formats a ratio: two decimals, fewer once it is large.
pub fn fmt_ratio(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}")
    } else if ratio >= 10.0 {
        format!("{ratio:.1}")
    } else {
        format!("{ratio:.2}")
    }
}

fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The plain-text tables printed on stdout.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "machine: {}", report.machine.summary());
    let _ = writeln!(
        out,
        "workers: {}; ratio = median of per-pair wq/tokio time (< 1.00: wq faster)\n",
        report.run.workers
    );
    let _ = writeln!(
        out,
        "{:<24} {:>11} {:>11} {:>9} {:>13}  {:<5}  one repetition",
        "workload", "wq", "tokio", "wq/tokio", "ratio p25-p75", "pairs"
    );
    for w in &report.workloads {
        let _ = writeln!(
            out,
            "{:<24} {:>11} {:>11} {:>9} {:>13}  {:<5}  {}",
            w.name,
            fmt_ns(w.wq_median_ns),
            fmt_ns(w.tokio_median_ns),
            fmt_ratio(w.ratio_median),
            format!("{}-{}", fmt_ratio(w.ratio_p25), fmt_ratio(w.ratio_p75)),
            w.pairs,
            w.unit
        );
    }

    let seeds: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.seed.as_ref())
        .collect();
    if !seeds.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<10} {:>8} {:>12} {:>12} {:>21} {:>21}",
            "producers",
            "items",
            "wq items/s",
            "tokio items/s",
            "wq spawn p50/p95",
            "tokio spawn p50/p95"
        );
        for s in seeds {
            let _ = writeln!(
                out,
                "{:<10} {:>8} {:>12} {:>12} {:>21} {:>21}",
                s.producers,
                grouped(s.items),
                fmt_rate(s.wq_items_per_s),
                fmt_rate(s.tokio_items_per_s),
                format!(
                    "{} / {}",
                    fmt_ns(s.wq_spawn_p50_ns),
                    fmt_ns(s.wq_spawn_p95_ns)
                ),
                format!(
                    "{} / {}",
                    fmt_ns(s.tokio_spawn_p50_ns),
                    fmt_ns(s.tokio_spawn_p95_ns)
                ),
            );
        }
    }
    out
}

/// The Markdown report (the contents of `BENCHMARKS.md`).
pub fn markdown(report: &Report, plot_path: &str) -> String {
    let m = &report.machine;
    let r = &report.run;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "wq against tokio's multi-thread runtime, both with {} worker threads, \
         measured side by side in one run: for each workload the two runtimes \
         alternate in pairs of samples. The ratio is the median of the per-pair \
         ratios of wq's time to tokio's; **below 1.00 wq is faster**. Times are \
         medians per repetition of the workload.\n",
        r.workers
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| CPU | {} |", m.cpu);
    let _ = writeln!(out, "| cores | {} |", m.cores);
    let _ = writeln!(out, "| kernel | {} |", m.kernel);
    let _ = writeln!(out, "| compiler | {} |", m.rustc);
    if !m.optimized {
        let _ = writeln!(out, "| build | unoptimized |");
    }
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(
        out,
        "| pairs | {} per scheduler workload, {} per seed round trip |",
        r.samples, r.seed_samples
    );
    let args = if r.args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", r.args.join(" "))
    };
    let _ = writeln!(
        out,
        "| command | `cargo run --release -p wq-bench --bin bench{args}` |\n"
    );

    let _ = writeln!(out, "## Scheduler and seed round trip\n");
    let _ = writeln!(
        out,
        "| workload | one repetition | wq | tokio | wq/tokio | ratio p25–p75 |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
    for w in &report.workloads {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | **{}** | {}–{} |",
            w.name,
            w.unit,
            fmt_ns(w.wq_median_ns),
            fmt_ns(w.tokio_median_ns),
            fmt_ratio(w.ratio_median),
            fmt_ratio(w.ratio_p25),
            fmt_ratio(w.ratio_p75)
        );
    }

    let seeds: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.seed.as_ref())
        .collect();
    if !seeds.is_empty() {
        let _ = writeln!(out, "\n## Seed round trip throughput and spawn latency\n");
        let _ = writeln!(
            out,
            "Producers are threads outside the runtime; each spawns one task through a \
             handle and waits for it to run before the next. Latency is the spawn call \
             alone (per run over all items, median across runs).\n"
        );
        let _ = writeln!(
            out,
            "| producers | items per run | wq items/s | tokio items/s | wq spawn p50 / p95 | tokio spawn p50 / p95 |"
        );
        let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        for s in seeds {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} / {} | {} / {} |",
                s.producers,
                grouped(s.items),
                fmt_rate(s.wq_items_per_s),
                fmt_rate(s.tokio_items_per_s),
                fmt_ns(s.wq_spawn_p50_ns),
                fmt_ns(s.wq_spawn_p95_ns),
                fmt_ns(s.tokio_spawn_p50_ns),
                fmt_ns(s.tokio_spawn_p95_ns)
            );
        }
    }
    let _ = writeln!(out, "\n![wq/tokio time ratios]({plot_path})");
    out
}

/// Where the plot's axis stops, so that one extreme ratio cannot flatten
/// every other bar.
pub const SVG_AXIS_LIMIT: f64 = 3.0;

/// A horizontal bar chart of the ratios: one bar per workload from 0 to its
/// median ratio, a whisker over the 25th-75th percentile of the pairs, and a
/// dashed vertical line at 1.0. The axis stops at [`SVG_AXIS_LIMIT`]; a bar
/// reaching past it ends in an arrowhead, and every median is also printed.
pub fn svg(report: &Report) -> String {
    const WIDTH: f64 = 760.0;
    const MARGIN: f64 = 12.0;
    const LABEL_W: f64 = 190.0;
    const VALUE_W: f64 = 56.0;
    const TOP: f64 = 76.0;
    const ROW: f64 = 26.0;
    const BAR: f64 = 16.0;
    const AXIS_H: f64 = 40.0;

    let rows = report.workloads.len() as f64;
    let bottom = TOP + ROW * rows;
    let height = bottom + AXIS_H;
    let widest = report
        .workloads
        .iter()
        .map(|w| w.ratio_p75.max(w.ratio_median))
        .fold(1.0_f64, f64::max);
    // Axis from 0 to a multiple of 0.25 past the widest value, at least 1.5.
    let steps = ((widest * 1.05) / 0.25)
        .ceil()
        .clamp(6.0, SVG_AXIS_LIMIT / 0.25);
    let max = steps * 0.25;
    let plot_left = LABEL_W;
    let plot_w = WIDTH - MARGIN - VALUE_W - plot_left;
    let x = |ratio: f64| plot_left + ratio.clamp(0.0, max) / max * plot_w;

    let machine = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="22" font-size="15" font-weight="bold">wq / tokio time ratio, median of pairs (below 1.0: wq faster)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="40" fill="#555555">{}</text>"##,
        escape(&machine.summary())
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="56" fill="#555555">{}; {} workers per runtime; whiskers: 25th-75th percentile of the pairs</text>"##,
        escape(&machine.date),
        report.run.workers
    );

    // Grid and axis labels every 0.25.
    for step in 0..=steps as usize {
        let value = step as f64 * 0.25;
        let gx = x(value);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#e4e4e4"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{value:.2}</text>"##,
            bottom + 16.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555555">wq time / tokio time</text>"##,
        plot_left + plot_w / 2.0,
        bottom + 34.0
    );

    for (i, w) in report.workloads.iter().enumerate() {
        let top = TOP + ROW * i as f64 + (ROW - BAR) / 2.0;
        let mid = top + BAR / 2.0;
        let fill = if w.ratio_median <= 1.0 {
            "#3a8f5c"
        } else {
            "#c9683a"
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            plot_left - 8.0,
            mid + 4.0,
            escape(&w.name)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{plot_left}" y="{top:.1}" width="{:.1}" height="{BAR}" fill="{fill}"/>"#,
            x(w.ratio_median) - plot_left
        );
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#222222" stroke-width="1.5"/>"##,
            x(w.ratio_p25),
            x(w.ratio_p75)
        );
        if w.ratio_median > max {
            let tip = x(max);
            let _ = writeln!(
                out,
                r#"<path d="M {:.1} {:.1} L {:.1} {mid:.1} L {:.1} {:.1} Z" fill="{fill}"/>"#,
                tip,
                top - 3.0,
                tip + 9.0,
                tip,
                top + BAR + 3.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            WIDTH - MARGIN,
            mid + 4.0,
            fmt_ratio(w.ratio_median)
        );
    }

    let one = x(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{one:.1}" y1="{:.1}" x2="{one:.1}" y2="{bottom}" stroke="#000000" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
        TOP - 4.0
    );
    out.push_str("</svg>\n");
    out
}

/// Escapes text for inclusion in XML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_and_rates() {
        assert_eq!(fmt_ns(12.0), "12.0 ns");
        assert_eq!(fmt_ns(1_234.0), "1.23 µs");
        assert_eq!(fmt_ns(45_600_000.0), "45.6 ms");
        assert_eq!(fmt_ns(2.5e9), "2.50 s");
        assert_eq!(fmt_rate(123_456.0), "123 k/s");
        assert_eq!(fmt_rate(2_000_000.0), "2.00 M/s");
        assert_eq!(fmt_ratio(0.876), "0.88");
        assert_eq!(fmt_ratio(782.14), "782");
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
