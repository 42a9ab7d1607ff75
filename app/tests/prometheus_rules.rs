//! The shipped monitoring files are valid and complete, checked with the real `promtool`
//! (`scripts/promtool` finds it or installs Debian's `prometheus` package):
//!
//! - `deploy/prometheus/prometheus.yml` passes `promtool check config` (which loads the rule
//!   files it names), and each file of `deploy/prometheus/rules/` passes `promtool check rules`;
//! - the unit tests `deploy/prometheus/tests/*.yml` pass `promtool test rules`: every alert
//!   fires at its threshold, stays quiet just below it, and resolves, and the recording rules
//!   record the values expected from known series (`tests/recording.yml`);
//! - every alert in `alerts.yml` has a `severity` (warning or critical), a `summary`, a
//!   `description` and a `runbook_url` whose anchor is a heading of README.md (`#### <name>`
//!   under the runbook), and appears in the unit tests both firing and quiet;
//! - the recording rules other tests and the dashboard query exist, named `level:metric:ops`;
//! - `deploy/grafana/pinion.json` parses, and every panel has a non-empty PromQL expression
//!   using only the Grafana variables a real Prometheus is sent them with (`$job`, `$instance`,
//!   `$__rate_interval`, `$__interval`, `$__range`).
//!
//! Every promtool run is bounded in time, and its output is printed when it fails.
//!
//! The YAML is read with a line scan, not a YAML parser: neither `serde_yaml` nor `serde_yml`
//! is in Cargo.lock, and the files are written in one layout (`- alert:` items, two-space
//! indentation) that the scan relies on; `promtool` itself checks that they are valid YAML.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{repo, wait_exit};

/// The longest one promtool run may take (they take well under a second).
const PROMTOOL_BOUND: Duration = Duration::from_secs(120);

/// Where the runbook anchors point: the README's headings on the project's page.
const RUNBOOK_BASE: &str = "https://github.com/pinion-rs/pinion#";

/// The recording rules queried by name elsewhere (app/tests/prometheus.rs, the dashboard, the
/// alerts).
const REQUIRED_RECORDS: [&str; 7] = [
    "job_route:pinion_http_request_duration_seconds:p99_5m",
    "job_route:pinion_http_request_duration_seconds:p95_5m",
    "job_route:pinion_http_request_duration_seconds:p50_5m",
    "job_route:pinion_http_requests:rate5m",
    "job:pinion_http_requests:rate5m",
    "job:pinion_http_errors:ratio_rate5m",
    "job_route:pinion_http_errors:rate5m",
];

/// The Grafana variables a dashboard expression may use.
const GRAFANA_VARIABLES: [&str; 5] = [
    "$job",
    "$instance",
    "$__rate_interval",
    "$__interval",
    "$__range",
];

fn deploy() -> PathBuf {
    repo().join("deploy/prometheus")
}

/// The path of a working promtool, from `scripts/promtool` (which installs it when missing).
fn promtool() -> PathBuf {
    PathBuf::from(common::tool_path("promtool"))
}

/// Runs promtool with `args` in the repository, at most [`PROMTOOL_BOUND`]; asserts that it
/// succeeds, printing everything it wrote when it does not.
fn assert_promtool(args: &[&str]) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    // Read both pipes while it runs, so that a long report cannot block it on a full pipe.
    let readers = [
        drain(child.stdout.take().expect("stdout")),
        drain(child.stderr.take().expect("stderr")),
    ];
    let status = wait_exit(&mut child, PROMTOOL_BOUND);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let printed: String = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    let status = status.unwrap_or_else(|| {
        panic!("promtool {args:?} still running after {PROMTOOL_BOUND:?}:\n{printed}")
    });
    assert!(
        status.success(),
        "promtool {args:?} failed ({status}):\n{printed}"
    );
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit-test files, sorted, relative to the repository.
fn test_files() -> Vec<String> {
    let dir = deploy().join("tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("deploy/prometheus/tests/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in {}", dir.display());
    files
}

/// One alert of alerts.yml as the line scan sees it.
#[derive(Debug, Default)]
struct Alert {
    name: String,
    severity: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    runbook_url: Option<String>,
}

/// The value of `key:` on `line` (after its indentation), if the line is that key.
fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches('"'))
}

/// The alerts of alerts.yml: each `- alert: Name` item up to the next item (or group), with
/// its `severity`, `summary`, `description` and `runbook_url`. A value written as a block
/// scalar (`>-`, `|`) is the text of the more indented lines after it.
fn alerts() -> Vec<Alert> {
    let text = read(&deploy().join("rules/alerts.yml"));
    let lines: Vec<&str> = text.lines().collect();
    let mut alerts: Vec<Alert> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- ") {
            if let Some(name) = value_of(line.trim_start().trim_start_matches("- "), "alert") {
                alerts.push(Alert {
                    name: name.to_string(),
                    ..Alert::default()
                });
                continue;
            }
            if line.trim_start().starts_with("- name:")
                || line.trim_start().starts_with("- record:")
            {
                // A new group or a recording rule: no alert open.
                alerts.push(Alert::default());
                continue;
            }
        }
        let Some(alert) = alerts.last_mut().filter(|a| !a.name.is_empty()) else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let block = |v: &str| -> String {
            if !v.starts_with('>') && !v.starts_with('|') {
                return v.to_string();
            }
            lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        };
        for (key, slot) in [
            ("severity", &mut alert.severity),
            ("summary", &mut alert.summary),
            ("description", &mut alert.description),
            ("runbook_url", &mut alert.runbook_url),
        ] {
            if let Some(v) = value_of(line, key) {
                *slot = Some(block(v));
            }
        }
    }
    alerts.retain(|a| !a.name.is_empty());
    assert!(alerts.len() >= 10, "the scan found only {alerts:?}");
    alerts
}

/// GitHub's anchor for a heading's text: lower case, punctuation other than `-` and `_`
/// dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_scrape_configuration_passes_promtool_check_config() {
    assert_promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
}

#[test]
fn each_rules_file_passes_promtool_check_rules() {
    for file in ["recording.yml", "alerts.yml"] {
        assert_promtool(&["check", "rules", &format!("deploy/prometheus/rules/{file}")]);
    }
}

#[test]
fn every_alert_unit_test_passes_promtool_test_rules() {
    let files = test_files();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    assert_promtool(&args);
}

#[test]
fn every_alert_has_a_severity_summary_description_and_runbook() {
    let alerts = alerts();
    let mut names = BTreeSet::new();
    for a in &alerts {
        assert!(names.insert(&a.name), "{} defined twice", a.name);
        assert!(
            a.name.starts_with("Pinion"),
            "{}: alert names start with Pinion",
            a.name
        );
        assert!(
            matches!(a.severity.as_deref(), Some("warning" | "critical")),
            "{}: severity {:?}, not warning or critical",
            a.name,
            a.severity
        );
        for (what, v) in [("summary", &a.summary), ("description", &a.description)] {
            assert!(
                v.as_deref().is_some_and(|v| v.len() > 10),
                "{}: no {what} ({v:?})",
                a.name
            );
        }
        assert!(
            a.description
                .as_deref()
                .is_some_and(|d| d.contains("Look first at")),
            "{}: the description does not say what to look at first: {:?}",
            a.name,
            a.description
        );
        let url = a.runbook_url.as_deref().unwrap_or_default();
        assert_eq!(
            url,
            format!("{RUNBOOK_BASE}{}", a.name.to_lowercase()),
            "{}: runbook_url is not the README heading of its name",
            a.name
        );
    }
    // The alerts the issue asks for by name.
    for required in ["PinionInstanceAbsent", "PinionAllInstancesAbsent"] {
        assert!(names.contains(&required.to_string()), "no {required}");
    }
}

#[test]
fn every_alert_is_unit_tested_firing_and_quiet() {
    // alertname -> (seen with expected alerts, seen with none)
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in test_files() {
        let text = read(&repo().join(&file));
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = value_of(line, "alertname") else {
                continue;
            };
            let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
            let entry = seen.entry(name.to_string()).or_default();
            match next {
                "exp_alerts: []" => entry.1 = true,
                "exp_alerts:" => entry.0 = true,
                other => panic!("{file}: after alertname {name}, {other:?}"),
            }
        }
    }
    let alerts = alerts();
    for a in &alerts {
        let (firing, quiet) = seen.get(&a.name).copied().unwrap_or_default();
        assert!(firing, "{}: no unit test expects it to fire", a.name);
        assert!(quiet, "{}: no unit test expects it quiet", a.name);
    }
    let defined: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    for name in seen.keys() {
        assert!(
            defined.contains(name.as_str()),
            "the unit tests test {name}, which alerts.yml does not define"
        );
    }
}

#[test]
fn every_runbook_anchor_is_a_readme_heading() {
    let readme = read(&repo().join("README.md"));
    let headings: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    // The runbook's headings, `#### Name`, after `### Runbook`.
    let runbook: BTreeSet<&str> = readme
        .lines()
        .skip_while(|l| *l != "### Runbook")
        .skip(1)
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
        .filter_map(|l| l.strip_prefix("#### "))
        .map(str::trim)
        .collect();
    for a in alerts() {
        let url = a.runbook_url.unwrap_or_default();
        let (_, fragment) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{}: runbook_url {url:?} has no anchor", a.name));
        assert!(
            headings.contains(fragment),
            "{}: README.md has no heading with anchor #{fragment}",
            a.name
        );
        assert!(
            runbook.contains(a.name.as_str()),
            "{}: no `#### {}` under `### Runbook` in README.md",
            a.name,
            a.name
        );
    }
}

#[test]
fn the_recording_rules_others_query_exist_and_follow_the_naming_convention() {
    let text = read(&deploy().join("rules/recording.yml"));
    let records: Vec<&str> = text
        .lines()
        .filter_map(|l| value_of(l.trim_start().trim_start_matches("- "), "record"))
        .collect();
    for r in &records {
        let parts: Vec<&str> = r.split(':').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| !p.is_empty()),
            "{r}: not level:metric:operations"
        );
    }
    for required in REQUIRED_RECORDS {
        assert!(records.contains(&required), "no recording rule {required}");
    }
    let unique: BTreeSet<&&str> = records.iter().collect();
    assert_eq!(unique.len(), records.len(), "a rule recorded twice");
}

/// Every panel of `panels`, rows' nested panels included.
fn all_panels(panels: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in panels {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(all_panels(inner));
        }
    }
    out
}

#[test]
fn the_grafana_dashboard_parses_and_every_panel_has_an_expression() {
    let path = repo().join("deploy/grafana/pinion.json");
    let dashboard: serde_json::Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["DS_PROMETHEUS", "job", "instance"] {
        assert!(
            variables.contains(&v),
            "no template variable {v}: {variables:?}"
        );
    }
    let panels = all_panels(dashboard["panels"].as_array().expect("panels"));
    let mut exprs = 0;
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        let targets = p["targets"].as_array();
        assert!(
            targets.is_some_and(|t| !t.is_empty()),
            "panel {title:?} has no targets"
        );
        for t in targets.into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default().trim();
            assert!(
                !expr.is_empty(),
                "panel {title:?} has a target without expr"
            );
            // Every `$` starts one of the variables the query test substitutes.
            for (at, _) in expr.match_indices('$') {
                let rest = &expr[at..];
                let name_len = rest[1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map_or(rest.len(), |n| n + 1);
                let used = &rest[..name_len];
                assert!(
                    GRAFANA_VARIABLES.contains(&used),
                    "panel {title:?}: {used} in {expr:?} is not one of {GRAFANA_VARIABLES:?}"
                );
            }
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "only {exprs} expressions in the dashboard");
}
