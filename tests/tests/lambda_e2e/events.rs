//! The events AWS would send the functions (API Gateway HTTP API payload v2, SQS batches,
//! EventBridge schedules) and the API Gateway response the api function answers with.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_sqs::types::Message;
use serde_json::{json, Map, Value};

/// The caller API Gateway's IAM authorizer vouches for.
pub const PORTAL_USER_ARN: &str = "arn:aws:sts::111122223333:assumed-role/PortalUsers/alice";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn request_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("e2e-{}-{}", now_ms(), N.fetch_add(1, Ordering::Relaxed))
}

/// An HTTP API (payload format 2.0) request with IAM authorization by [`PORTAL_USER_ARN`].
pub fn http_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Value {
    let mut h = Map::new();
    h.insert(
        "host".into(),
        "e2eapi.execute-api.us-east-1.amazonaws.com".into(),
    );
    h.insert("user-agent".into(), "onboard-portal/e2e".into());
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), Value::from(*v));
    }
    if body.is_some() {
        h.insert("content-type".into(), "application/json".into());
    }
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path_only,
        "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "e2eapi",
            "domainName": "e2eapi.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "e2eapi",
            "http": {
                "method": method,
                "path": path_only,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "onboard-portal/e2e"
            },
            "requestId": request_id(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Mar/2026:06:00:00 +0000",
            "timeEpoch": now_ms(),
            "authorizer": {
                "iam": {
                    "accessKey": "ASIAEXAMPLE",
                    "accountId": "111122223333",
                    "callerId": "AROAEXAMPLE:alice",
                    "cognitoIdentity": null,
                    "principalOrgId": null,
                    "userArn": PORTAL_USER_ARN,
                    "userId": "AROAEXAMPLE:alice"
                }
            }
        },
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        event["body"] = Value::from(b.to_string());
    }
    event
}

/// What the api function answered (API Gateway's view of it).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Value,
    pub body: Value,
    pub raw: Value,
}

impl HttpResponse {
    pub fn parse(raw: Value) -> Self {
        let status = raw["statusCode"].as_u64().expect("a statusCode") as u16;
        assert_ne!(
            raw["isBase64Encoded"],
            json!(true),
            "JSON answers are sent as text: {raw}"
        );
        let body = match raw["body"].as_str() {
            None | Some("") => Value::Null,
            Some(text) => serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {raw}")),
        };
        HttpResponse {
            status,
            headers: raw["headers"].clone(),
            body,
            raw,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// An SQS event of `messages` as received from the queue `queue_arn` (what the event source
/// mapping hands the worker).
pub fn sqs_event(queue_arn: &str, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), Value::from(v.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The EventBridge event of a schedule rule.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": request_id(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "111122223333",
        "time": "2026-03-01T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/onboard-reconciler-every-5-minutes"],
        "detail": {}
    })
}

/// The message ids of a worker's `batchItemFailures`.
pub fn batch_failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a partial batch response: {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_string())
        .collect()
}
