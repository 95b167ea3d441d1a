//! Portal POST → message on the queue → worker → status through `GET /applications/{id}`: to
//! SUCCEEDED, to ROLLED_BACK after an injected failure, and a batch with a malformed message.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use onboard_integration_tests::{
    assert_onboarded, assert_same, denied_for, fail_always, instances, spec, spec_namespace,
};
use serde_json::{json, Value};

use crate::events::PORTAL_USER_ARN;
use crate::stack::{Lambda, Stack};

/// `POST /applications` through the api function; returns the saga id after checking the 202.
pub async fn submit(api: &Lambda, spec: &Value, key: &str) -> String {
    let resp = api
        .http(
            "POST",
            "/applications",
            &[("Idempotency-Key", key)],
            Some(spec),
        )
        .await;
    assert_eq!(resp.status, 202, "{:?}", resp.raw);
    let saga_id = resp.body["sagaId"].as_str().expect("a saga id").to_string();
    assert!(saga_id.starts_with("sg-"), "{saga_id}");
    assert_eq!(resp.body["namespace"], spec_namespace(spec).as_str());
    assert_eq!(resp.body["created"], true);
    assert_eq!(resp.body["queued"], true, "{:?}", resp.raw);
    let location = format!("/applications/{saga_id}");
    assert_eq!(resp.header("location"), Some(location.as_str()));
    assert_eq!(resp.body["statusUrl"], location.as_str());
    saga_id
}

fn attribute(m: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    m.attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// The message is the run message of `saga_id`, in the namespace's FIFO group.
pub fn assert_run_message(m: &Message, saga_id: &str, namespace: &str) {
    let body: Value = serde_json::from_str(m.body().expect("a body")).expect("a JSON body");
    assert_eq!(
        body,
        json!({"sagaId": saga_id, "namespace": namespace, "action": "run"}),
        "the queued message"
    );
    assert_eq!(
        attribute(m, MessageSystemAttributeName::MessageGroupId),
        Some(namespace),
        "one FIFO group per namespace"
    );
    let dedup = format!("{saga_id}:run");
    assert_eq!(
        attribute(m, MessageSystemAttributeName::MessageDeduplicationId),
        Some(dedup.as_str())
    );
}

/// The message is the reconciler's re-send of `saga_id`'s run: the same body and group, but a
/// deduplication id of its own (`…:run:resend:<minute>`), or SQS would drop it as a duplicate
/// of the first send within five minutes.
pub fn assert_resent_run_message(m: &Message, saga_id: &str, namespace: &str) {
    let body: Value = serde_json::from_str(m.body().expect("a body")).expect("a JSON body");
    assert_eq!(
        body,
        json!({"sagaId": saga_id, "namespace": namespace, "action": "run"}),
        "the re-sent message"
    );
    assert_eq!(
        attribute(m, MessageSystemAttributeName::MessageGroupId),
        Some(namespace)
    );
    let dedup = attribute(m, MessageSystemAttributeName::MessageDeduplicationId).unwrap_or("");
    let prefix = format!("{saga_id}:run:resend:");
    assert!(
        dedup
            .strip_prefix(&prefix)
            .is_some_and(|minute| minute.parse::<u64>().is_ok()),
        "a re-send's own deduplication id: {dedup}"
    );
}

/// The association ARN the sandbox holds for `app_arn` on `instance`.
fn association_arn(dump: &Value, app_arn: &str, instance: &str) -> String {
    let found: Vec<&Value> = dump["integration_associations"]
        .as_object()
        .expect("associations in the dump")
        .values()
        .filter(|a| a["integration_arn"] == app_arn && a["instance_id"] == instance)
        .collect();
    assert_eq!(found.len(), 1, "one association of {app_arn} on {instance}");
    found[0]["arn"].as_str().expect("an ARN").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_post_runs_through_the_queue_and_the_worker_to_succeeded() {
    let stack = Stack::start().await;
    let pristine = stack.dump();
    let (api, worker) = tokio::join!(stack.api(), stack.worker(&[]));
    let spec = spec(&instances(2));
    let namespace = spec_namespace(&spec);

    let saga_id = submit(&api, &spec, "portal-e2e-happy").await;
    let page = api.status_page(&saga_id).await;
    assert_eq!(page["status"], "PENDING", "nothing ran yet: {page}");

    let messages = stack.receive(&stack.queue, 1).await;
    assert_run_message(&messages[0], &saga_id, &namespace);
    let failed = worker.run_batch(&stack.queue, &messages).await;
    assert!(failed.is_empty(), "batchItemFailures: {failed:?}");
    stack.delete(&stack.queue, &messages).await;

    let page = api.status_page(&saga_id).await;
    assert_eq!(page["status"], "SUCCEEDED", "{page}");
    assert!(page.get("lastError").is_none(), "{page}");
    let dump = stack.dump();
    let onboarded = assert_onboarded(&pristine, &dump, &spec);
    assert_eq!(
        page["resources"]["applicationArn"],
        onboarded.app_arn.as_str()
    );
    let associations = page["resources"]["associations"]
        .as_object()
        .expect("associations");
    assert_eq!(associations.len(), 2, "{page}");
    for instance in instances(2) {
        assert_eq!(
            associations[&instance],
            association_arn(&dump, &onboarded.app_arn, &instance).as_str(),
            "the status page shows the association ARN of {instance}"
        );
    }

    // The requester is the principal API Gateway's IAM authorizer vouched for.
    let list = api
        .http("GET", "/applications?status=SUCCEEDED", &[], None)
        .await;
    assert_eq!(list.status, 200, "{:?}", list.raw);
    assert_eq!(
        list.body["items"],
        json!([{
            "id": saga_id,
            "kind": "onboard",
            "namespace": namespace,
            "status": "SUCCEEDED",
            "createdAt": page["createdAt"],
            "updatedAt": page["updatedAt"],
            "requestedBy": PORTAL_USER_ARN,
        }])
    );

    // The worker's JSON log lines name the saga, and its EMF metrics count the success.
    let lines = worker.json_lines();
    assert!(
        lines.iter().any(|l| l.to_string().contains(&saga_id)),
        "the worker logged the saga id: {:?}",
        worker.logs()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.get("_aws").is_some() && l.get("SagasSucceeded").is_some()),
        "an EMF line with SagasSucceeded: {:?}",
        worker.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failure_rolls_back_and_the_status_page_says_why() {
    let stack = Stack::start().await;
    let pristine = stack.dump();
    let (code, status) = denied_for("CreateIntegrationAssociation");
    stack
        .sandbox()
        .add_fault(fail_always("CreateIntegrationAssociation", code, status));
    let (api, worker) = tokio::join!(stack.api(), stack.worker(&[]));
    let spec = spec(&instances(2));
    let namespace = spec_namespace(&spec);

    let saga_id = submit(&api, &spec, "portal-e2e-denied").await;
    let messages = stack.receive(&stack.queue, 1).await;
    assert_run_message(&messages[0], &saga_id, &namespace);
    let failed = worker.run_batch(&stack.queue, &messages).await;
    assert!(
        failed.is_empty(),
        "a rolled-back saga is a handled message: {failed:?}"
    );
    stack.delete(&stack.queue, &messages).await;

    let page = api.status_page(&saga_id).await;
    assert_eq!(page["status"], "ROLLED_BACK", "{page}");
    let cause = &page["lastError"];
    assert_eq!(cause["code"], code, "{page}");
    assert!(
        cause["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{cause}"
    );
    assert!(
        cause["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "the cause comes with a fix: {cause}"
    );
    assert!(
        page["nextAction"]
            .as_str()
            .is_some_and(|a| a.contains("submit the request again")),
        "{page}"
    );
    assert_eq!(page["resources"]["associations"], json!({}), "{page}");
    assert!(
        stack.sandbox().faults().iter().all(|rule| rule.fired >= 1),
        "the fault fired"
    );
    assert_same(&pristine, &stack.dump(), "after the rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_fails_alone_in_its_batch() {
    let stack = Stack::start().await;
    let pristine = stack.dump();
    let (api, worker) = tokio::join!(stack.api(), stack.worker(&[]));
    let spec = spec(&instances(1));
    let namespace = spec_namespace(&spec);

    let saga_id = submit(&api, &spec, "portal-e2e-batch").await;
    // Someone else's unreadable message on the same queue, in another group.
    stack
        .sqs
        .send_message()
        .queue_url(&stack.queue.url)
        .message_body(r#"{"sagaId": "sg-1", "namespace": "#)
        .message_group_id("broken")
        .message_deduplication_id("broken-1")
        .send()
        .await
        .expect("moto answers SendMessage");

    let messages = stack.receive(&stack.queue, 2).await;
    let (good, bad): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(|m| {
        attribute(m, MessageSystemAttributeName::MessageGroupId) == Some(namespace.as_str())
    });
    assert_eq!((good.len(), bad.len()), (1, 1));
    assert_run_message(&good[0], &saga_id, &namespace);
    // The malformed one first: it must not stop the good one.
    let batch = [bad[0].clone(), good[0].clone()];
    let failed = worker.run_batch(&stack.queue, &batch).await;
    assert_eq!(
        failed,
        vec![bad[0].message_id().expect("an id").to_string()],
        "only the malformed message is reported failed"
    );
    stack.delete(&stack.queue, &good).await;

    let page = api.status_page(&saga_id).await;
    assert_eq!(page["status"], "SUCCEEDED", "{page}");
    assert_onboarded(&pristine, &stack.dump(), &spec);
    assert!(
        worker
            .json_lines()
            .iter()
            .any(|l| l["level"] == "ERROR" && l.to_string().contains("not a saga message")),
        "the reason is logged: {:?}",
        worker.logs()
    );
}
