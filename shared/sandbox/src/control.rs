//! The control API under `/_sandbox/` (a path no AWS service uses): state dump, reset,
//! seeding, fault rules, throttling limits and the call log. JSON in and out.
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | GET | `/_sandbox/health` | `{"ok":true}` |
//! | GET | `/_sandbox/state[?timestamps=true]` | the full state |
//! | POST | `/_sandbox/reset` | back to the seed; faults, calls, buckets cleared |
//! | GET / POST | `/_sandbox/seed` | the seed / replace the seed and reset |
//! | GET / POST / DELETE | `/_sandbox/faults` | list / add a `FaultSpec` → `{"id":N}` / clear |
//! | GET / DELETE | `/_sandbox/calls` | the call log / clear it |
//! | GET / PUT | `/_sandbox/throttle` | the limits / replace them |

use crate::faults::FaultSpec;
use crate::restjson::query;
use crate::seed::SeedConfig;
use crate::shared_state::Shared;
use crate::throttle::ThrottleConfig;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// A JSON response with a status.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn bad_request(message: &str) -> Response {
    json_response(400, &json!({"error": message}))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

/// Serves one control request.
pub(crate) async fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Response {
    let route = path.trim_start_matches("/_sandbox").trim_matches('/');
    match (method.as_str(), route) {
        ("GET", "health") => json_response(200, &json!({"ok": true})),
        ("GET", "state") => {
            let with_times = query(params, "timestamps") == Some("true");
            json_response(200, &shared.lock().world.dump(with_times))
        }
        ("POST", "reset") => match shared.reset() {
            Ok(()) => json_response(200, &json!({"reset": true})),
            Err(e) => bad_request(&e.to_string()),
        },
        ("GET", "seed") => {
            let seed = shared.lock().seed.clone();
            json_response(200, &serde_json::to_value(seed).unwrap_or(Value::Null))
        }
        ("POST" | "PUT", "seed") => match parse::<SeedConfig>(body) {
            Ok(seed) => match shared.reseed(seed) {
                Ok(()) => json_response(200, &json!({"seeded": true})),
                Err(e) => bad_request(&e.to_string()),
            },
            Err(message) => bad_request(&message),
        },
        ("GET", "faults") => {
            let rules = shared.lock().faults.rules().to_vec();
            json_response(200, &serde_json::to_value(rules).unwrap_or(Value::Null))
        }
        ("POST", "faults") => match parse::<FaultSpec>(body) {
            Ok(spec) => {
                let id = shared.lock().faults.add(spec);
                json_response(200, &json!({"id": id}))
            }
            Err(message) => bad_request(&message),
        },
        ("DELETE", "faults") => {
            shared.lock().faults.clear();
            json_response(200, &json!({"cleared": true}))
        }
        ("GET", "calls") => {
            let calls = shared.lock().calls.clone();
            json_response(200, &serde_json::to_value(calls).unwrap_or(Value::Null))
        }
        ("DELETE", "calls") => {
            shared.lock().calls.clear();
            json_response(200, &json!({"cleared": true}))
        }
        ("GET", "throttle") => {
            let config = shared.lock().throttle.config().clone();
            json_response(200, &serde_json::to_value(config).unwrap_or(Value::Null))
        }
        ("PUT" | "POST", "throttle") => match parse::<ThrottleConfig>(body) {
            Ok(config) => {
                shared.lock().throttle.reconfigure(config);
                json_response(200, &json!({"updated": true}))
            }
            Err(message) => bad_request(&message),
        },
        _ => json_response(
            404,
            &json!({"error": format!("no control operation {method} {path}")}),
        ),
    }
}
