//! Request-side helpers for the two rest-json services: body and query-string parsing with
//! the error codes those services use.

use crate::wire::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses a JSON body (empty means `{}`). Malformed JSON or a member of the wrong type is
/// `SerializationException` (400), as AWS rest-json services answer.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| serialization(&e.to_string()))?;
    if !value.is_object() {
        return Err(serialization("the request body must be a JSON object"));
    }
    Ok(value)
}

/// Converts a parsed body into a request shape.
pub(crate) fn shape<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    serde_json::from_value(value.clone()).map_err(|e| serialization(&e.to_string()))
}

fn serialization(detail: &str) -> ApiError {
    ApiError::new(
        "SerializationException",
        400,
        &format!("Could not read the request body: {detail}"),
    )
}

/// The first value of a query-string parameter.
pub(crate) fn query<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An integer query parameter; `Err` carries the message for the service's validation error.
pub(crate) fn query_int(params: &[(String, String)], name: &str) -> Result<Option<i64>, String> {
    match query(params, name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("Value '{text}' at '{name}' is not an integer")),
    }
}

/// A boolean query parameter (`true`/`false`).
pub(crate) fn query_bool(params: &[(String, String)], name: &str) -> Result<bool, String> {
    match query(params, name) {
        None => Ok(false),
        Some(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Some(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        Some(text) => Err(format!("Value '{text}' at '{name}' is not a boolean")),
    }
}

/// Drops `null`s and empty objects left by optional members, so responses carry only what is
/// set (the SDKs skip nulls anyway; other clients may not).
pub(crate) fn compact(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}
