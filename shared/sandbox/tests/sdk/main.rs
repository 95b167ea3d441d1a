//! Drives the sandbox over HTTP with the real `aws-sdk-appintegrations`, `aws-sdk-connect` and
//! `aws-sdk-iam` clients (endpoint URL + test credentials; never a real AWS endpoint), plus a
//! few raw HTTP requests for what no SDK sends (unknown operations, the control API).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

mod appintegrations;
mod common;
mod connect;
mod control;
mod faults;
mod iam;
mod moto;
mod throttling;
