//! Clients and helpers shared by the test modules.

use aws_sdk_appintegrations as ai;
use aws_sdk_connect as connect;
use aws_sdk_iam as iam;
use onboard_sandbox::{RunningSandbox, Sandbox, SandboxConfig, ThrottleConfig, DEMO_ACCOUNT};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use aws_sdk_appintegrations::config::retry::RetryConfig;

/// A running sandbox and one client per service.
pub struct Env {
    pub sandbox: RunningSandbox,
    pub ai: ai::Client,
    pub connect: connect::Client,
    pub iam: iam::Client,
}

/// Demo seed, no throttling (tests that want it turn it on).
pub fn config() -> SandboxConfig {
    SandboxConfig {
        throttle: ThrottleConfig::unlimited(),
        ..SandboxConfig::default()
    }
}

/// The demo world, no throttling, no SDK retries (so injected errors surface at once).
pub async fn start() -> Env {
    start_with(config(), RetryConfig::disabled()).await
}

pub async fn start_with(config: SandboxConfig, retry: RetryConfig) -> Env {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let endpoint = sandbox.endpoint();
    Env {
        ai: ai_client(&endpoint, retry.clone()),
        connect: connect_client(&endpoint, retry.clone()),
        iam: iam_client(&endpoint, retry),
        sandbox,
    }
}

fn creds() -> ai::config::Credentials {
    ai::config::Credentials::new("testing", "testing", None, None, "test")
}

pub fn ai_client(endpoint: &str, retry: RetryConfig) -> ai::Client {
    let conf = ai::Config::builder()
        .behavior_version(ai::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(ai::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .retry_config(retry)
        .build();
    ai::Client::from_conf(conf)
}

pub fn connect_client(endpoint: &str, retry: RetryConfig) -> connect::Client {
    let conf = connect::Config::builder()
        .behavior_version(connect::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(connect::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .retry_config(retry)
        .build();
    connect::Client::from_conf(conf)
}

pub fn iam_client(endpoint: &str, retry: RetryConfig) -> iam::Client {
    let conf = iam::Config::builder()
        .behavior_version(iam::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(iam::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .retry_config(retry)
        .build();
    iam::Client::from_conf(conf)
}

/// A minimal valid CreateApplication call for `namespace`.
pub fn create_app(
    client: &ai::Client,
    namespace: &str,
) -> ai::operation::create_application::builders::CreateApplicationFluentBuilder {
    client
        .create_application()
        .name(format!("App {namespace}").replace(['.', '/'], " "))
        .namespace(namespace)
        .application_source_config(
            ai::types::ApplicationSourceConfig::builder()
                .external_url_config(
                    ai::types::ExternalUrlConfig::builder()
                        .access_url(format!("https://{namespace}/app"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
}

/// Creates an application and returns (id, arn).
pub async fn new_app(client: &ai::Client, namespace: &str) -> (String, String) {
    let out = create_app(client, namespace).send().await.unwrap();
    (out.id().unwrap().to_owned(), out.arn().unwrap().to_owned())
}

/// Associates an application with an instance; returns the association id.
pub async fn associate(client: &connect::Client, instance: &str, app_arn: &str) -> String {
    client
        .create_integration_association()
        .instance_id(instance)
        .integration_type(connect::types::IntegrationType::Application)
        .integration_arn(app_arn)
        .send()
        .await
        .unwrap()
        .integration_association_id()
        .unwrap()
        .to_owned()
}

/// The demo instance SLR role name.
pub const EAST_SLR: &str = "AWSServiceRoleForAmazonConnect_XYUbWO6kTpYfc9uUNk5i";
pub const SUPPORT_SLR: &str = "AWSServiceRoleForAmazonConnect_HBDQRkK8TkflREzD1NkM";

pub fn slr_arn(name: &str) -> String {
    format!("arn:aws:iam::{DEMO_ACCOUNT}:role/aws-service-role/connect.amazonaws.com/{name}")
}

/// Percent-decoding as IAM callers must do (plain, not form decoding: `+` stays `+`).
pub fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// A raw HTTP/1.1 exchange: (status, lower-cased header block, body).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// JSON from a raw exchange's body.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}
