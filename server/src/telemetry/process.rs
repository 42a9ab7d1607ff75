//! The standard `process_*` metrics, read from `/proc/self` at scrape time.
//!
//! Hand-written rather than the `prometheus` crate's `process` feature, which pulls in `procfs`
//! and its dependencies for six numbers. Each metric is left out when its file cannot be read
//! (no `/proc`, or a sandbox hiding it), so a scrape never fails for them.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::store::{counter, desc, family, gauge, Def};

const CPU: Def = Def {
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    labels: &[],
};
const RESIDENT: Def = Def {
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    labels: &[],
};
const VIRTUAL: Def = Def {
    name: "process_virtual_memory_bytes",
    help: "Virtual memory size in bytes.",
    labels: &[],
};
const OPEN_FDS: Def = Def {
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    labels: &[],
};
const MAX_FDS: Def = Def {
    name: "process_max_fds",
    help: "Maximum number of open file descriptors.",
    labels: &[],
};
const START_TIME: Def = Def {
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    labels: &[],
};

/// Collects the process metrics of the calling process.
pub(super) struct ProcessCollector {
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub(super) fn new() -> ProcessCollector {
        let descs = [CPU, RESIDENT, VIRTUAL, OPEN_FDS, MAX_FDS, START_TIME]
            .iter()
            .map(desc)
            .collect();
        ProcessCollector { descs }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::with_capacity(6);
        let one = |def: &Def, ty: MetricType, v: f64| {
            let metric = match ty {
                MetricType::COUNTER => counter(def, &[], v),
                _ => gauge(def, &[], v),
            };
            family(def, ty, vec![metric])
        };
        let (ticks_per_sec, page_size) = sysconf();
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(Stat::parse) {
            if ticks_per_sec > 0 {
                let cpu = (stat.utime + stat.stime) as f64 / ticks_per_sec as f64;
                out.push(one(&CPU, MetricType::COUNTER, cpu));
                if let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time) {
                    let start = boot as f64 + stat.start_ticks as f64 / ticks_per_sec as f64;
                    out.push(one(&START_TIME, MetricType::GAUGE, start));
                }
            }
            if page_size > 0 {
                let rss = stat.rss_pages.saturating_mul(page_size);
                out.push(one(&RESIDENT, MetricType::GAUGE, rss as f64));
            }
            out.push(one(&VIRTUAL, MetricType::GAUGE, stat.vsize as f64));
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.push(one(&OPEN_FDS, MetricType::GAUGE, dir.count() as f64));
        }
        if let Some(max) = read("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files)
        {
            out.push(one(&MAX_FDS, MetricType::GAUGE, max as f64));
        }
        out
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Clock ticks per second and page size, or 0 for what the system does not say.
fn sysconf() -> (u64, u64) {
    // SAFETY: sysconf reads a configuration value; it takes no pointers and has no
    // preconditions. It returns -1 for an unknown name, which the conversion turns into 0.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (
        u64::try_from(ticks).unwrap_or(0),
        u64::try_from(page).unwrap_or(0),
    )
}

/// The fields of `/proc/self/stat` used here (see proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn parse(text: &str) -> Option<Stat> {
        // Field 2, the command name in parentheses, may itself hold spaces and parentheses:
        // the fields after it start past the last `)`, at field 3.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// `btime` of `/proc/stat`: boot time, in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft `Max open files` limit of `/proc/self/limits`; `None` when unlimited.
fn max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_survives_a_command_name_with_spaces_and_parens() {
        let text = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    24 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 \
                    3 0 0 0 0 0";
        assert_eq!(
            Stat::parse(text),
            Some(Stat {
                utime: 250,
                stime: 50,
                start_ticks: 123456,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn limits_and_boot_time_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63429                63429                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
    }
}
