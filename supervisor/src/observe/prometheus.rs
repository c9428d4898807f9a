//! The plugins' status as Prometheus metrics: the text exposition format
//! 0.0.4, encoded by `prometheus-client` from a snapshot of the registry
//! at each scrape ([`render`]). [`super::metrics_http`] serves it.

use corral_plugin_api::wire::{PluginInfo, PluginState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel as _, EncodeLabelSet, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use tracing::error;

/// The Prometheus text (format 0.0.4) for these plugins.
pub(crate) fn render(plugins: &[PluginInfo]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(plugins.to_vec())));
    let mut out = String::new();
    if let Err(err) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        // Writing to a String does not fail, and neither does `Snapshot`
        // but through the writer.
        error!("metrics endpoint: encoding the metrics failed: {err}");
    }
    out
}

/// The plugins as the registry listed them for one scrape: a collector
/// that encodes every metric family of [`render`], in a fixed order, from
/// this snapshot (nothing here counts: the registry keeps the numbers).
#[derive(Debug)]
struct Snapshot(Vec<PluginInfo>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let each = || self.0.iter();
        let gauge = MetricType::Gauge;
        let counter = MetricType::Counter;
        family(
            &mut encoder,
            Family::new("corral_plugin_up", gauge),
            "Whether the plugin's worker serves calls (state ready or unhealthy)",
            each().map(|plugin| {
                let up = matches!(plugin.state, PluginState::Ready | PluginState::Unhealthy);
                Sample::new(plugin, u64::from(up))
            }),
        )?;
        family(
            &mut encoder,
            Family::new("corral_plugin_state", gauge),
            "The plugin's lifecycle state, as a label",
            each().map(|plugin| Sample::new(plugin, 1).label("state", plugin.state.as_str())),
        )?;
        family(
            &mut encoder,
            // Exposed as corral_calls_total: counters get `_total`.
            Family::new("corral_calls", counter),
            "Calls of the plugin since the supervisor started",
            each().map(|plugin| Sample::new(plugin, plugin.calls)),
        )?;
        family(
            &mut encoder,
            Family::new("corral_call_errors", counter),
            "Failed calls of the plugin since the supervisor started, by error kind",
            each().flat_map(|plugin| {
                let errors = plugin.errors.iter();
                errors.map(move |(kind, count)| Sample::new(plugin, *count).label("kind", kind))
            }),
        )?;
        family(
            &mut encoder,
            Family::new("corral_calls_in_flight", gauge),
            "Calls of the plugin in flight now",
            each().map(|plugin| Sample::new(plugin, plugin.in_flight)),
        )?;
        family(
            &mut encoder,
            Family::new("corral_call_latency", gauge).unit(Unit::Seconds),
            "Call latency quantiles as the supervisor sees them (within 10%)",
            each().flat_map(|plugin| {
                let quantiles = [
                    ("0.5", plugin.latency_p50_us),
                    ("0.99", plugin.latency_p99_us),
                ];
                quantiles.into_iter().filter_map(move |(quantile, us)| {
                    Some(Sample::new(plugin, seconds(us?, 1e6)).label("quantile", quantile))
                })
            }),
        )?;
        family(
            &mut encoder,
            Family::new("corral_restarts", counter),
            "Times a worker of the plugin was started again after the first",
            each().map(|plugin| Sample::new(plugin, u64::from(plugin.restarts))),
        )?;
        family(
            &mut encoder,
            Family::new("corral_generation", gauge),
            "The serving worker's generation: 1 for the first, one more per hot reload",
            each().map(|plugin| Sample::new(plugin, plugin.generation)),
        )?;
        family(
            &mut encoder,
            Family::new("corral_uptime", gauge).unit(Unit::Seconds),
            "Seconds the plugin's current worker has been ready",
            each().filter_map(|plugin| Some(Sample::new(plugin, seconds(plugin.uptime_ms?, 1e3)))),
        )?;
        family(
            &mut encoder,
            Family::new("corral_rss", gauge).unit(Unit::Bytes),
            "Resident memory of the plugin's serving worker",
            each().filter_map(|plugin| Some(Sample::new(plugin, plugin.rss_bytes?))),
        )?;
        family(
            &mut encoder,
            Family::new("corral_cpu_percent", gauge),
            "CPU use of the plugin's serving worker over the last 2 s, in percent of one core",
            each().filter_map(|plugin| Some(Sample::new(plugin, u64::from(plugin.cpu_percent?)))),
        )?;
        family(
            &mut encoder,
            Family::new("corral_memory_limit", gauge).unit(Unit::Bytes),
            "The plugin's memory limit",
            each().filter_map(|plugin| Some(Sample::new(plugin, plugin.memory_limit_bytes?))),
        )
    }
}

/// What a metric family's descriptor says besides its help text.
struct Family {
    /// The name, without the unit (added after `_`) or a counter's `_total`
    /// (added to its samples): what is exposed is the name the README lists.
    name: &'static str,
    /// Counter or gauge.
    kind: MetricType,
    /// The unit: the suffix of the name.
    unit: Option<Unit>,
}

impl Family {
    /// A family without a unit.
    fn new(name: &'static str, kind: MetricType) -> Self {
        Self {
            name,
            kind,
            unit: None,
        }
    }

    /// The family measured in `unit`.
    fn unit(self, unit: Unit) -> Self {
        Self {
            unit: Some(unit),
            ..self
        }
    }
}

/// One sample of a metric family: its labels and value.
struct Sample<'a> {
    /// Its labels.
    labels: Labels<'a>,
    /// The value.
    value: Value,
}

impl<'a> Sample<'a> {
    /// A sample of `plugin` with this value.
    fn new(plugin: &'a PluginInfo, value: impl Into<Value>) -> Self {
        Self {
            labels: Labels {
                plugin: &plugin.name,
                other: None,
            },
            value: value.into(),
        }
    }

    /// Adds the label `name="value"` after `plugin`.
    fn label(mut self, name: &'static str, value: &'a str) -> Self {
        self.labels.other = Some((name, value));
        self
    }
}

/// A sample's labels: `plugin`, then the family's own label if it has one.
struct Labels<'a> {
    /// The `plugin` label.
    plugin: &'a str,
    /// A second label, if any.
    other: Option<(&'static str, &'a str)>,
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("plugin", self.plugin).encode(encoder.encode_label())?;
        match self.other {
            Some(label) => label.encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

/// A sample's value: a count, or a measure with a fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    /// A whole number.
    Whole(u64),
    /// A number with a fraction (seconds).
    Fraction(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::Whole(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Fraction(value)
    }
}

/// Encodes a family's `# HELP`, `# TYPE` (and `# UNIT`) lines, then its
/// samples.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    family: Family,
    help: &str,
    samples: impl Iterator<Item = Sample<'a>>,
) -> fmt::Result {
    let mut metric =
        encoder.encode_descriptor(family.name, help, family.unit.as_ref(), family.kind)?;
    for sample in samples {
        let mut metric = metric.encode_family(&sample.labels)?;
        match (family.kind, sample.value) {
            (MetricType::Counter, Value::Whole(count)) => {
                metric.encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
            (MetricType::Counter, Value::Fraction(count)) => {
                metric.encode_counter::<NoLabelSet, _, f64>(&count, None)?;
            }
            (_, Value::Whole(value)) => metric.encode_gauge(&value)?,
            (_, Value::Fraction(value)) => metric.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// `value` units as seconds, there being `per_second` of them in one
/// (exact up to 2^53 units: 285 years of microseconds).
fn seconds(value: u64, per_second: f64) -> f64 {
    value as f64 / per_second
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin with nothing known but its name and state.
    fn plugin(name: &str, state: PluginState) -> PluginInfo {
        PluginInfo {
            generation: 1,
            ..PluginInfo::new(name, format!("/plugins/{name}"), state)
        }
    }

    /// `hello`, ready with everything known, and `kv`, in backoff.
    fn two_plugins() -> Vec<PluginInfo> {
        let hello = PluginInfo {
            version: Some("1.2.0".to_owned()),
            pid: Some(4242),
            uptime_ms: Some(90_500),
            restarts: 2,
            generation: 3,
            rss_bytes: Some(10_485_760),
            cpu_percent: Some(12),
            memory_limit_bytes: Some(268_435_456),
            calls: 1000,
            errors: vec![("crashed".to_owned(), 1), ("timeout".to_owned(), 3)],
            in_flight: 2,
            latency_p50_us: Some(1_500),
            latency_p99_us: Some(2_250_000),
            ..plugin("hello", PluginState::Ready)
        };
        let kv = PluginInfo {
            restarts: 7,
            calls: 5,
            errors: vec![("unavailable".to_owned(), 5)],
            ..plugin("kv", PluginState::Backoff)
        };
        vec![hello, kv]
    }

    #[test]
    fn renders_two_plugins() {
        let expected = r#"# HELP corral_plugin_up Whether the plugin's worker serves calls (state ready or unhealthy)
# TYPE corral_plugin_up gauge
corral_plugin_up{plugin="hello"} 1
corral_plugin_up{plugin="kv"} 0
# HELP corral_plugin_state The plugin's lifecycle state, as a label
# TYPE corral_plugin_state gauge
corral_plugin_state{plugin="hello",state="ready"} 1
corral_plugin_state{plugin="kv",state="backoff"} 1
# HELP corral_calls_total Calls of the plugin since the supervisor started
# TYPE corral_calls_total counter
corral_calls_total{plugin="hello"} 1000
corral_calls_total{plugin="kv"} 5
# HELP corral_call_errors_total Failed calls of the plugin since the supervisor started, by error kind
# TYPE corral_call_errors_total counter
corral_call_errors_total{plugin="hello",kind="crashed"} 1
corral_call_errors_total{plugin="hello",kind="timeout"} 3
corral_call_errors_total{plugin="kv",kind="unavailable"} 5
# HELP corral_calls_in_flight Calls of the plugin in flight now
# TYPE corral_calls_in_flight gauge
corral_calls_in_flight{plugin="hello"} 2
corral_calls_in_flight{plugin="kv"} 0
# HELP corral_call_latency_seconds Call latency quantiles as the supervisor sees them (within 10%)
# TYPE corral_call_latency_seconds gauge
corral_call_latency_seconds{plugin="hello",quantile="0.5"} 0.0015
corral_call_latency_seconds{plugin="hello",quantile="0.99"} 2.25
# HELP corral_restarts_total Times a worker of the plugin was started again after the first
# TYPE corral_restarts_total counter
corral_restarts_total{plugin="hello"} 2
corral_restarts_total{plugin="kv"} 7
# HELP corral_generation The serving worker's generation: 1 for the first, one more per hot reload
# TYPE corral_generation gauge
corral_generation{plugin="hello"} 3
corral_generation{plugin="kv"} 1
# HELP corral_uptime_seconds Seconds the plugin's current worker has been ready
# TYPE corral_uptime_seconds gauge
corral_uptime_seconds{plugin="hello"} 90.5
# HELP corral_rss_bytes Resident memory of the plugin's serving worker
# TYPE corral_rss_bytes gauge
corral_rss_bytes{plugin="hello"} 10485760
# HELP corral_cpu_percent CPU use of the plugin's serving worker over the last 2 s, in percent of one core
# TYPE corral_cpu_percent gauge
corral_cpu_percent{plugin="hello"} 12
# HELP corral_memory_limit_bytes The plugin's memory limit
# TYPE corral_memory_limit_bytes gauge
corral_memory_limit_bytes{plugin="hello"} 268435456
"#;
        let text = render(&two_plugins());
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            expected.lines().collect::<Vec<_>>()
        );
    }

    #[test]
    fn unhealthy_is_up_and_stopped_is_down() {
        let plugins = [
            plugin("a", PluginState::Unhealthy),
            plugin("b", PluginState::Stopped),
        ];
        let text = render(&plugins);
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"b\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn no_plugins_render_descriptors_only() {
        let text = render(&[]);
        assert!(text.lines().all(|line| line.starts_with("# ")), "{text}");
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("# HELP "), 12, "{text}");
        assert_eq!(count("# TYPE "), 12, "{text}");
        assert_eq!(count("# UNIT "), 0, "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn unknown_values_have_no_sample() {
        let text = render(&[plugin("idle", PluginState::Stopped)]);
        for family in [
            "corral_call_latency_seconds",
            "corral_uptime_seconds",
            "corral_rss_bytes",
            "corral_cpu_percent",
            "corral_memory_limit_bytes",
            "corral_call_errors_total",
        ] {
            assert!(
                !text
                    .lines()
                    .any(|line| line.starts_with(&format!("{family}{{"))),
                "{family} in {text}"
            );
        }
        assert!(
            text.contains("\ncorral_calls_total{plugin=\"idle\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let odd = PluginInfo {
            errors: vec![("line\nbreak".to_owned(), 1)],
            ..plugin(r#"a\b"c"#, PluginState::Ready)
        };
        let text = render(&[odd, plugin("ünï", PluginState::Ready)]);
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"a\\\\b\\\"c\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\ncorral_call_errors_total{plugin=\"a\\\\b\\\"c\",kind=\"line\\nbreak\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"ünï\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn seconds_keep_their_fraction() {
        assert_eq!(seconds(0, 1e6), 0.0);
        assert_eq!(seconds(7, 1e6), 0.000_007);
        assert_eq!(seconds(1_500, 1e3), 1.5);
        let uptime = PluginInfo {
            uptime_ms: Some(2_000),
            latency_p50_us: Some(7),
            latency_p99_us: Some(123_456_789),
            ..plugin("p", PluginState::Ready)
        };
        let text = render(&[uptime]);
        for line in [
            "corral_uptime_seconds{plugin=\"p\"} 2.0",
            "corral_call_latency_seconds{plugin=\"p\",quantile=\"0.5\"} 0.000007",
            "corral_call_latency_seconds{plugin=\"p\",quantile=\"0.99\"} 123.456789",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
