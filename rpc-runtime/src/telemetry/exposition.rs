//! Writing a registry for whoever scrapes it, in the format it asks for:
//! OpenMetrics when the `Accept` header names it (Prometheus does), else
//! the classic Prometheus text format 0.0.4 (curl, `promtool check
//! metrics`, older scrapers), which has no `# UNIT` or `# EOF` and names a
//! counter's family after its `_total` sample.
//!
//! `prometheus-client` writes OpenMetrics only; the classic form is derived
//! from it here line by line. The input is always that encoder's output for
//! this crate's registries (counters, gauges, histograms; no info, state
//! set or exemplars), so the few differences between the two formats that
//! matter are known and handled; a test checks both against `promtool`.

use std::collections::HashSet;

use prometheus_client::registry::Registry;

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `registry` encoded for a scraper that sent `accept`: the body and its
/// content type.
pub fn encode(registry: &Registry, accept: Option<&str>) -> Result<(String, &'static str), String> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry)
        .map_err(|e| format!("could not encode metrics: {e}"))?;
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        Ok((body, OPENMETRICS))
    } else {
        Ok((classic(&body), PROMETHEUS_TEXT))
    }
}

/// The classic text format of `openmetrics`, this encoder's output.
pub fn classic(openmetrics: &str) -> String {
    // A counter's samples end in `_total`; its HELP and TYPE lines must
    // name the same family in the classic format.
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match comment {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = if kind == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                };
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{kind}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counters_family_is_named_after_its_total_and_openmetrics_only_lines_go() {
        let om = "# HELP rpc_jobs Jobs.\n# TYPE rpc_jobs counter\nrpc_jobs_total{a=\"b\"} 1\n\
                  # HELP rpc_wait_seconds Wait.\n# TYPE rpc_wait_seconds histogram\n# UNIT rpc_wait_seconds seconds\n\
                  rpc_wait_seconds_sum 0.0\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP rpc_jobs_total Jobs.\n# TYPE rpc_jobs_total counter\nrpc_jobs_total{a=\"b\"} 1\n\
             # HELP rpc_wait_seconds Wait.\n# TYPE rpc_wait_seconds histogram\nrpc_wait_seconds_sum 0.0\n"
        );
    }

    #[test]
    fn openmetrics_is_served_only_to_who_asks_for_it() {
        let registry = Registry::default();
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(encode(&registry, Some(prometheus)).unwrap().1, OPENMETRICS);
        assert_eq!(encode(&registry, Some("*/*")).unwrap().1, PROMETHEUS_TEXT);
        assert_eq!(encode(&registry, None).unwrap().1, PROMETHEUS_TEXT);
    }
}
