//! The Prometheus text exposition format, version 0.0.4.
//!
//! Per family: `# HELP name text` (backslash and newline escaped), `# TYPE name type`, then one
//! line per sample, `name{label="value",...} number` (label values with backslash, double
//! quote and newline escaped). A histogram has cumulative `name_bucket{...,le="bound"}` lines
//! ending with `le="+Inf"`, then `name_sum` and `name_count`.

use std::fmt::Write;

use super::snapshot::{FamilySnapshot, SampleValue, Snapshot};

impl Snapshot {
    /// The Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    pub fn to_prometheus(&self) -> String {
        render(&self.families)
    }
}

/// The MIME type of the text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus reads it (Rust's shortest round-trip form, `+Inf`, `-Inf`, `NaN`).
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn labels(out: &mut String, pairs: &[(String, String)], le: Option<&str>) {
    if pairs.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let extra = le.map(|v| ("le".to_string(), v.to_string()));
    for (k, v) in pairs.iter().chain(extra.as_ref()) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape_value(v));
    }
    out.push('}');
}

/// Renders `families` (each name once).
fn render(families: &[FamilySnapshot]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
        for s in &f.series {
            match &s.value {
                SampleValue::Counter(n) => {
                    out.push_str(&f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {n}");
                }
                SampleValue::Gauge(v) => {
                    out.push_str(&f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", number(*v));
                }
                SampleValue::Histogram(h) => {
                    for b in &h.buckets {
                        let _ = write!(out, "{}_bucket", f.name);
                        labels(&mut out, &s.labels, Some(&number(b.le)));
                        let _ = writeln!(out, " {}", b.count);
                    }
                    let _ = write!(out, "{}_sum", f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", number(h.sum));
                    let _ = write!(out, "{}_count", f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", h.count);
                }
            }
        }
    }
    out
}
