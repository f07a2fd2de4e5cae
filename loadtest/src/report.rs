//! The run's report: JSON, a text summary, and an HTML page with inline SVG charts.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub scenario: String,
    pub base_url: String,
    pub mode: String,
    pub requests: u64,
    pub duration_secs: f64,
    pub throughput_rps: f64,
    pub latency_ms: Latency,
    /// Per operation, when the run sent more than one kind of request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub latency_by_op: BTreeMap<String, Latency>,
    pub outcomes: BTreeMap<String, u64>,
    pub per_second: Vec<Second>,
    pub violations: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Second {
    pub t: u64,
    pub requests: u64,
    pub p99_ms: f64,
}

impl Report {
    pub(crate) fn text(&self) -> String {
        let mut s = format!(
            "scenario {} against {} ({})\n  requests {} in {:.2} s: {:.0} req/s\n  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
            self.scenario,
            self.base_url,
            self.mode,
            self.requests,
            self.duration_secs,
            self.throughput_rps,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.p999,
            self.latency_ms.max,
        );
        if !self.latency_by_op.is_empty() {
            s.push_str("  latency ms per operation:\n");
        }
        for (op, l) in &self.latency_by_op {
            s.push_str(&format!(
                "    {op:<14} p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
                l.p50, l.p90, l.p99, l.p999, l.max
            ));
        }
        s.push_str("  outcomes:\n");
        for (k, v) in &self.outcomes {
            s.push_str(&format!("    {k:<28} {v}\n"));
        }
        if self.violations.is_empty() {
            s.push_str("  verification: ok\n");
        } else {
            s.push_str(&format!(
                "  verification: {} violation(s)\n",
                self.violations.len()
            ));
            for v in self.violations.iter().take(50) {
                s.push_str(&format!("    VIOLATION {v}\n"));
            }
            if self.violations.len() > 50 {
                s.push_str(&format!(
                    "    ... and {} more (all of them in the JSON report)\n",
                    self.violations.len() - 50
                ));
            }
        }
        s
    }

    pub(crate) fn html(&self) -> String {
        let tput: Vec<(f64, f64)> = self
            .per_second
            .iter()
            .map(|s| (s.t as f64, s.requests as f64))
            .collect();
        let p99: Vec<(f64, f64)> = self
            .per_second
            .iter()
            .map(|s| (s.t as f64, s.p99_ms))
            .collect();
        let tput_svg = line_chart("throughput (req/s)", &tput, &BLUE);
        let p99_svg = line_chart("p99 latency (ms)", &p99, &RED);
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>firstcome load test: {}</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head><body>\
<h1>firstcome load test: {}</h1><pre>{}</pre><h2>Throughput per second</h2>{}<h2>p99 latency per second</h2>{}<h2>JSON</h2><pre>{}</pre></body></html>\n",
            escape(&self.scenario),
            escape(&self.scenario),
            escape(&self.text()),
            tput_svg,
            p99_svg,
            escape(&json),
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn line_chart(title: &str, points: &[(f64, f64)], color: &RGBColor) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 300)).into_drawing_area();
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
            chart.configure_mesh().x_desc("second").draw()?;
            chart.draw_series(LineSeries::new(points.iter().copied(), color))?;
            root.present()?;
            Ok(())
        };
        if let Err(e) = draw() {
            eprintln!("chart {title}: {e}");
        }
    }
    out
}
