//! AWS clients, built once per execution environment at init from one shared SDK
//! configuration (credentials, Region, retry settings).
//!
//! Endpoints follow the SDK's standard settings: `AWS_ENDPOINT_URL` for every service or
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_APPINTEGRATIONS`,
//! `AWS_ENDPOINT_URL_CONNECT`, `AWS_ENDPOINT_URL_IAM` per service — which is how the end-to-end
//! tests point the compiled functions at moto and the sandbox. Production sets none of them.

use std::sync::Arc;

use aws_config::SdkConfig;
use onboard_aws::{DynamoSagaStore, SqsQueue};

/// The shared SDK configuration from the default provider chain.
pub async fn sdk_config() -> SdkConfig {
    onboard_aws::sdk_config(None).await
}

/// The saga store (and resource locks) on DynamoDB table `table`.
pub fn saga_store(sdk: &SdkConfig, table: &str) -> Arc<DynamoSagaStore> {
    Arc::new(DynamoSagaStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
    ))
}

/// The worker queue at `queue_url`.
pub fn saga_queue(sdk: &SdkConfig, queue_url: &str) -> Arc<SqsQueue> {
    Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url))
}
