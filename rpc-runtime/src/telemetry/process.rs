//! What every process that serves metrics says about itself: the standard
//! `process_*` metrics every Prometheus client library exports (CPU time,
//! memory, file descriptors, start time), so that the usual dashboards and
//! alerts work on workers and on `rpc exporter` unchanged, and
//! `rpc_build_info`, which says what is running.
//!
//! The process figures are read from `/proc/self` at scrape time (with
//! procfs, as the `prometheus` crate's process collector does); on another
//! system, or when a read fails, they are left out rather than made up.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The crate version `rpc_build_info` reports.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision `rpc_build_info` reports: `RPC_GIT_REVISION` as set
/// when the crate was compiled (the Dockerfile and CI can pass
/// `git rev-parse HEAD`), else (unset or empty) `unknown`.
pub fn revision() -> &'static str {
    match option_env!("RPC_GIT_REVISION") {
        Some(revision) if !revision.trim().is_empty() => revision.trim(),
        _ => "unknown",
    }
}

/// Registers `rpc_build_info` and the `process_*` metrics in `registry`.
pub fn register_process_metrics(registry: &mut Registry) {
    registry.register_collector(Box::new(BuildInfo));
    registry.register_collector(Box::new(ProcessCollector));
}

/// `rpc_build_info{version, revision} 1`.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        family
            .get_or_create(&[("version", VERSION), ("revision", revision())])
            .set(1);
        let metric = encoder.encode_descriptor(
            "rpc_build_info",
            "Always 1: the version and git revision of the rpc-runtime this process runs",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// The `process_*` metrics, read at every scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::registry::Unit;

        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second().max(1) as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?;
            cpu.encode(m)?;
            let rss = ConstGauge::new((stat.rss.saturating_mul(procfs::page_size())) as f64);
            let m = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                rss.metric_type(),
            )?;
            rss.encode(m)?;
            let vsize = ConstGauge::new(stat.vsize as f64);
            let m = encoder.encode_descriptor(
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(&Unit::Bytes),
                vsize.metric_type(),
            )?;
            vsize.encode(m)?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let start = ConstGauge::new(boot as f64 + stat.starttime as f64 / ticks);
                let m = encoder.encode_descriptor(
                    "process_start_time",
                    "Start time of the process since the Unix epoch in seconds",
                    Some(&Unit::Seconds),
                    start.metric_type(),
                )?;
                start.encode(m)?;
            }
        }
        if let Ok(open) = me.fd_count() {
            let open = ConstGauge::new(open as i64);
            let m = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                open.metric_type(),
            )?;
            open.encode(m)?;
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                let max = ConstGauge::new(i64::try_from(max).unwrap_or(i64::MAX));
                let m = encoder.encode_descriptor(
                    "process_max_fds",
                    "Maximum number of open file descriptors",
                    None,
                    max.metric_type(),
                )?;
                max.encode(m)?;
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}
