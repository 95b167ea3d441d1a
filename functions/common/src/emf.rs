//! CloudWatch embedded metric format (EMF): a metric is a JSON line on stdout that the Lambda
//! log pipeline turns into a CloudWatch metric, with no API call and no added latency.
//!
//! ```json
//! {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"ConnectOnboarding",
//!   "Dimensions":[["Function","Step"]],"Metrics":[{"Name":"StepLatency","Unit":"Milliseconds"}]}]},
//!  "Function":"worker","Step":"associate","StepLatency":[412,388],"sagaId":"sg-…"}
//! ```
//!
//! Every document has the `Function` dimension (which Lambda emitted it) plus the dimensions the
//! caller adds; extra properties (saga id, namespace) are searchable in Logs Insights but are not
//! dimensions, so they cost nothing in metric cardinality.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// The default metric namespace (`METRICS_NAMESPACE` overrides it).
pub const DEFAULT_NAMESPACE: &str = "ConnectOnboarding";

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric of a document: a name, a unit and one or more values.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub unit: Unit,
    pub values: Vec<f64>,
}

impl Metric {
    pub fn count(name: impl Into<String>, n: f64) -> Self {
        Metric {
            name: name.into(),
            unit: Unit::Count,
            values: vec![n],
        }
    }

    pub fn millis(name: impl Into<String>, values: Vec<f64>) -> Self {
        Metric {
            name: name.into(),
            unit: Unit::Milliseconds,
            values,
        }
    }
}

#[derive(Clone)]
enum Sink {
    Stdout,
    Buffer(Arc<Mutex<Vec<u8>>>),
    Discard,
}

/// Writes EMF documents. Cheap to clone.
#[derive(Clone)]
pub struct Emf {
    namespace: Arc<str>,
    function: Arc<str>,
    sink: Sink,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf")
            .field("namespace", &self.namespace)
            .field("function", &self.function)
            .finish()
    }
}

impl Emf {
    /// Documents on stdout, for `function` (the `Function` dimension).
    pub fn stdout(namespace: &str, function: &str) -> Self {
        Emf {
            namespace: namespace.into(),
            function: function.into(),
            sink: Sink::Stdout,
        }
    }

    /// Documents collected in memory (tests); read them with [`Emf::documents`].
    pub fn capture(function: &str) -> Self {
        Emf {
            namespace: DEFAULT_NAMESPACE.into(),
            function: function.into(),
            sink: Sink::Buffer(Arc::new(Mutex::new(Vec::new()))),
        }
    }

    /// No documents at all: for hosts without CloudWatch (`onboard serve`), where EMF lines
    /// would only clutter the output.
    pub fn discard(function: &str) -> Self {
        Emf {
            namespace: DEFAULT_NAMESPACE.into(),
            function: function.into(),
            sink: Sink::Discard,
        }
    }

    /// The captured documents (empty for stdout and discard).
    pub fn documents(&self) -> Vec<Value> {
        match &self.sink {
            Sink::Stdout | Sink::Discard => Vec::new(),
            Sink::Buffer(buf) => buf
                .lock()
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .lines()
                        .filter_map(|l| serde_json::from_str(l).ok())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The sum of every captured value of metric `name` (tests).
    pub fn total(&self, name: &str) -> f64 {
        self.documents()
            .iter()
            .filter_map(|d| d.get(name))
            .map(|v| match v {
                Value::Array(a) => a.iter().filter_map(Value::as_f64).sum(),
                other => other.as_f64().unwrap_or(0.0),
            })
            .sum()
    }

    /// The EMF document for `metrics` with extra `dimensions` and `properties`.
    pub fn document(
        &self,
        timestamp_ms: u64,
        dimensions: &[(&str, &str)],
        metrics: &[Metric],
        properties: &[(&str, Value)],
    ) -> Value {
        let mut doc = Map::new();
        let mut dim_names = vec![Value::from("Function")];
        dim_names.extend(dimensions.iter().map(|(k, _)| Value::from(*k)));
        let defs: Vec<Value> = metrics
            .iter()
            .map(|m| serde_json::json!({"Name": m.name, "Unit": m.unit.as_str()}))
            .collect();
        doc.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": &*self.namespace,
                    "Dimensions": [dim_names],
                    "Metrics": defs,
                }]
            }),
        );
        for (k, v) in properties {
            doc.insert((*k).to_string(), v.clone());
        }
        doc.insert("Function".into(), Value::from(&*self.function));
        for (k, v) in dimensions {
            doc.insert((*k).to_string(), Value::from(*v));
        }
        for m in metrics {
            let value = match m.values.as_slice() {
                [one] => Value::from(*one),
                many => Value::from(many.to_vec()),
            };
            doc.insert(m.name.clone(), value);
        }
        Value::Object(doc)
    }

    /// Write one document now. Nothing is written when `metrics` is empty.
    pub fn emit(
        &self,
        dimensions: &[(&str, &str)],
        metrics: &[Metric],
        properties: &[(&str, Value)],
    ) {
        if metrics.is_empty() || matches!(self.sink, Sink::Discard) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut line = self
            .document(now, dimensions, metrics, properties)
            .to_string();
        line.push('\n');
        match &self.sink {
            Sink::Stdout => {
                // One write of the whole line so it never interleaves with a log line.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
            Sink::Buffer(buf) => {
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(line.as_bytes());
                }
            }
            Sink::Discard => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let emf = Emf::capture("worker");
        emf.emit(
            &[("Step", "associate")],
            &[
                Metric::millis("StepLatency", vec![412.0, 388.0]),
                Metric::count("StepRetries", 1.0),
            ],
            &[("sagaId", Value::from("sg-1"))],
        );
        emf.emit(&[], &[], &[]);
        let docs = emf.documents();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(cw["Dimensions"], serde_json::json!([["Function", "Step"]]));
        assert_eq!(cw["Metrics"][0]["Unit"], "Milliseconds");
        assert_eq!(cw["Metrics"][1]["Name"], "StepRetries");
        assert!(d["_aws"]["Timestamp"].as_u64().unwrap() > 0);
        assert_eq!(d["Function"], "worker");
        assert_eq!(d["Step"], "associate");
        assert_eq!(d["StepLatency"], serde_json::json!([412.0, 388.0]));
        assert_eq!(d["sagaId"], "sg-1");
        assert_eq!(emf.total("StepLatency"), 800.0);
        assert_eq!(emf.total("StepRetries"), 1.0);
    }
}
