//! JSON logs for CloudWatch.
//!
//! One JSON object per line. The event's own fields are flattened into the object and
//! `spans` lists every enclosing span with its fields, outermost first, so a line logged deep
//! inside the saga engine still carries the Lambda `requestId` (the runtime's
//! `Lambda runtime invoke` span), the API Gateway request id, and the `saga_id`, `namespace` and
//! `ticket_id` of the saga span the handler opened:
//!
//! ```json
//! {"timestamp":"…","level":"INFO","message":"saga transition","saga_id":"sg-…","event":"succeeded",
//!  "target":"onboard_core::engine",
//!  "spans":[{"requestId":"8f5…","name":"Lambda runtime invoke"},
//!           {"saga_id":"sg-…","namespace":"crm.example.com","ticket_id":"CHG0012345","name":"saga"}]}
//! ```
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging control) or
//! `RUST_LOG` (`info`, `warn`, or per target: `info,onboard_core=debug`); default `info`.
//! Whatever is asked, the Lambda runtime crates and the HTTP stack log at `info` at most: at
//! `debug`/`trace` they log raw events and bodies (bearer tokens, webhook payloads).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::env::{ConfigError, Env};

/// The log filter from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn filter(env: &Env) -> Result<Targets, ConfigError> {
    let (name, raw) = match (env.get("AWS_LAMBDA_LOG_LEVEL"), env.get("RUST_LOG")) {
        (Some(level), _) => ("AWS_LAMBDA_LOG_LEVEL", level),
        (None, Some(spec)) => ("RUST_LOG", spec),
        (None, None) => return Ok(Targets::new().with_default(tracing::Level::INFO)),
    };
    // Lambda's levels include FATAL, which tracing calls ERROR.
    let spec = raw.to_ascii_lowercase().replace("fatal", "error");
    let targets = spec.parse::<Targets>().map_err(|e| ConfigError::Invalid {
        name: name.to_string(),
        value: raw,
        why: format!("not a log level or filter ({e}); use e.g. info or info,onboard_core=debug"),
    })?;
    Ok(pinned(targets))
}

/// Crates that log whole requests, events or bodies below `info`.
const PINNED_TARGETS: [&str; 6] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "aws_smithy_runtime",
];

/// `targets` with [`PINNED_TARGETS`] capped at `info` (a directive for the same target
/// replaces the asked one).
fn pinned(targets: Targets) -> Targets {
    let info = tracing::level_filters::LevelFilter::INFO;
    PINNED_TARGETS.iter().fold(targets, |t, target| {
        let asked = t.iter().find(|(name, _)| name == target).map(|(_, l)| l);
        // Keep a quieter level the operator asked for (e.g. `hyper=warn`).
        t.with_target(*target, asked.map_or(info, |l| l.min(info)))
    })
}

/// A subscriber writing JSON lines to `writer` (stdout in Lambda, a buffer in tests).
pub fn subscriber<W>(writer: W, filter: Targets) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_writer(writer)
        .with_filter(filter);
    tracing_subscriber::registry().with(layer)
}

/// Install the JSON subscriber on stdout for the whole process. Call once at init, before
/// anything logs; a second call (tests) keeps the first subscriber.
pub fn init(env: &Env) -> Result<(), ConfigError> {
    let filter = filter(env)?;
    // Already installed (e.g. by a test harness): keep it.
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn trace_never_reaches_the_runtime_and_http_crates_that_log_raw_events() {
        use tracing::Level;
        for spec in ["trace", "trace,lambda_runtime=trace,hyper=debug"] {
            let f = filter(&Env::from_pairs([("RUST_LOG", spec)])).unwrap();
            assert!(
                f.would_enable("onboard_core::engine", &Level::TRACE),
                "{spec}"
            );
            for target in ["lambda_runtime", "lambda_http::request", "hyper"] {
                assert!(!f.would_enable(target, &Level::DEBUG), "{spec}: {target}");
                assert!(f.would_enable(target, &Level::INFO), "{spec}: {target}");
            }
        }
        let quiet = filter(&Env::from_pairs([("RUST_LOG", "info,hyper=warn")])).unwrap();
        assert!(
            !quiet.would_enable("hyper", &Level::INFO),
            "a quieter ask is kept"
        );
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn every_line_is_json_with_the_enclosing_spans_fields() {
        let buf = Buf::default();
        let sub = subscriber(buf.clone(), filter(&Env::from_pairs([])).unwrap());
        tracing::subscriber::with_default(sub, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _i = invoke.enter();
            let saga = tracing::info_span!(
                "saga",
                saga_id = "sg-1",
                namespace = "crm.example.com",
                ticket_id = "CHG0012345"
            );
            let _s = saga.enter();
            tracing::info!(step = "associate", "deep inside");
            tracing::debug!("filtered out");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "deep inside");
        assert_eq!(v["step"], "associate");
        assert_eq!(v["spans"][0]["requestId"], "req-1");
        assert_eq!(v["spans"][1]["saga_id"], "sg-1");
        assert_eq!(v["spans"][1]["namespace"], "crm.example.com");
        assert_eq!(v["spans"][1]["ticket_id"], "CHG0012345");
    }

    #[test]
    fn the_level_comes_from_lambda_or_rust_log() {
        assert!(filter(&Env::from_pairs([("AWS_LAMBDA_LOG_LEVEL", "FATAL")])).is_ok());
        assert!(filter(&Env::from_pairs([("RUST_LOG", "info,onboard_core=debug")])).is_ok());
        let err = filter(&Env::from_pairs([("RUST_LOG", "crate=loud")])).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }
}
