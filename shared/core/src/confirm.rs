//! Ambiguous answers asked again before a saga acts on them.
//!
//! "It is not there" and "it is already there" are the answers that make a saga skip work: a
//! delete answered NotFound is taken as done, a lookup answered NotFound or empty is taken as
//! nothing to undo, a create answered Duplicate is taken as someone else's resource. Those are
//! exactly the answers that eventual consistency (IAM for seconds after a change, a list that
//! lags a create) and a retried call whose first attempt was applied give wrongly. Believed
//! once, they end a saga ROLLED_BACK with the application still there, or SUCCEEDED with an
//! association it was meant to remove.
//!
//! [`Confirming`] wraps each port: such an answer (an error of kind NotFound or Conflict, and
//! an empty `GetApplication` or `GetRolePolicy`, whose wrong "none" would make a saga write a
//! policy over the one that is there) is asked once more after a short wait (a
//! delete or create is sent again, which is idempotent for every call here) and the second
//! answer is the one the saga gets. IAM writes answered AccessDenied or NoSuchEntity (a role or
//! permission not yet propagated) are retried a few times with growing waits before the
//! refusal is believed. Every answer that was contradicted is logged.
//!
//! An IAM policy write is also read back until the read shows it (read-your-write): IAM may
//! answer the old document for seconds after a change, and an SLR edit runs under a lock that
//! the next saga takes as soon as this one lets go. Without the read-back, that saga could read
//! the old policy, add its statement and put it back, silently dropping this one's change. A
//! write that cannot be seen within the attempts is a retryable `WriteNotConfirmed`, so the
//! step runs again (the write is idempotent) or rolls back within its budget. A security
//! profile's grants are a read-modify-write of the whole list in the same way, and are read
//! back the same way.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{ErrorInfo, ErrorKind};
use crate::ports::{
    AppIntegrationsPort, AppRef, ApplicationDetails, ApplicationFields, ApplicationInfo,
    AssociationRef, ConnectPort, CreateApplication, IamPort, InstanceInfo, ProfileApplication,
};

/// How ambiguous answers are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmPolicy {
    /// The wait before an absent/duplicate answer is asked again.
    pub delay: Duration,
    /// Attempts of an IAM write answered AccessDenied/NoSuchEntity (waits double from
    /// `delay`), the first included.
    pub iam_write_attempts: u32,
}

impl Default for ConfirmPolicy {
    /// Half a second is above a list's usual lag behind a create; four IAM attempts wait
    /// 0.5 + 1 + 2 s, inside the 30 s lock an SLR edit runs under.
    fn default() -> Self {
        ConfirmPolicy {
            delay: Duration::from_millis(500),
            iam_write_attempts: 4,
        }
    }
}

/// A port whose ambiguous answers are confirmed (see the module docs).
pub struct Confirming<P> {
    inner: P,
    clock: Arc<dyn Clock>,
    policy: ConfirmPolicy,
}

impl<P> Confirming<P> {
    pub fn new(inner: P, clock: Arc<dyn Clock>, policy: ConfirmPolicy) -> Self {
        Confirming {
            inner,
            clock,
            policy,
        }
    }

    /// `first`, or when `ambiguous(&first)` the answer of one more `call` after the delay.
    async fn again<T, F, Fut>(
        &self,
        operation: &str,
        first: Result<T, ErrorInfo>,
        ambiguous: impl Fn(&Result<T, ErrorInfo>) -> bool,
        call: F,
    ) -> Result<T, ErrorInfo>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ErrorInfo>>,
    {
        if !ambiguous(&first) {
            return first;
        }
        self.clock.sleep(self.policy.delay).await;
        let second = call().await;
        if !ambiguous(&second) {
            tracing::warn!(
                operation,
                first = %describe(&first),
                second = %describe(&second),
                "an absent or duplicate answer was contradicted when asked again; acting on the second"
            );
        }
        second
    }

    /// `call` until it is answered other than AccessDenied/NoSuchEntity, at most
    /// `iam_write_attempts` times.
    async fn propagated<F, Fut>(&self, operation: &str, call: F) -> Result<(), ErrorInfo>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), ErrorInfo>>,
    {
        let mut wait = self.policy.delay;
        let mut attempt = 1;
        loop {
            let answer = call().await;
            match &answer {
                Err(e)
                    if matches!(e.kind, ErrorKind::Denied | ErrorKind::NotFound)
                        && attempt < self.policy.iam_write_attempts =>
                {
                    tracing::warn!(
                        operation,
                        attempt,
                        error = %e,
                        "IAM refused a write; retrying in case the role or permission has not propagated"
                    );
                    self.clock.sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                _ => return answer,
            }
        }
    }
}

impl<P> Confirming<P> {
    /// `read` until `seen` accepts its answer, at most `iam_write_attempts` times with
    /// doubling waits; then a retryable `WriteNotConfirmed` naming `what`. A terminal read
    /// error ends it at once.
    async fn read_back<T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        read: F,
        seen: impl Fn(&T) -> bool,
    ) -> Result<(), ErrorInfo>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ErrorInfo>>,
    {
        let attempts = self.policy.iam_write_attempts.max(1);
        let mut wait = self.policy.delay;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match read().await {
                Ok(answer) if seen(&answer) => {
                    if attempt > 1 {
                        tracing::warn!(
                            operation,
                            what,
                            attempt,
                            "a read showed the state before the write; it shows the write now"
                        );
                    }
                    return Ok(());
                }
                Ok(_) => last = "the state before the write".into(),
                // A refusal (denied, invalid, gone) is the caller's to act on, as for any call.
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if attempt < attempts {
                self.clock.sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        Err(ErrorInfo::new(
            ErrorKind::NotYetConsistent,
            "WriteNotConfirmed",
            format!(
                "{operation} on {what} succeeded but reading it back still gave {last} after {attempts} attempts"
            ),
        )
        .with_fix("nothing to do: the step is retried; if it keeps failing, check the service's health"))
    }
}

impl<P> Confirming<P>
where
    P: Deref + Send + Sync,
    P::Target: IamPort,
{
    /// Reads `role`'s `policy` back until `seen` accepts it (absent is `None`).
    async fn policy_read_back(
        &self,
        operation: &str,
        role: &str,
        policy: &str,
        seen: impl Fn(Option<&str>) -> bool,
    ) -> Result<(), ErrorInfo> {
        let what = format!("{role}/{policy}");
        let read = || async {
            match self.inner.get_role_policy(role, policy).await {
                Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
                other => other,
            }
        };
        self.read_back(operation, &what, read, |doc: &Option<String>| {
            seen(doc.as_deref())
        })
        .await
    }
}

/// The same grants, whatever their order.
fn same_grants(a: &[ProfileApplication], b: &[ProfileApplication]) -> bool {
    let key = |apps: &[ProfileApplication]| {
        let mut k: Vec<_> = apps
            .iter()
            .map(|p| {
                let mut perms = p.permissions.clone();
                perms.sort();
                (p.namespace.clone(), perms, p.kind.clone())
            })
            .collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

fn describe<T>(answer: &Result<T, ErrorInfo>) -> String {
    match answer {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn not_found<T>(answer: &Result<T, ErrorInfo>) -> bool {
    matches!(answer, Err(e) if e.kind == ErrorKind::NotFound)
}

fn conflict<T>(answer: &Result<T, ErrorInfo>) -> bool {
    matches!(answer, Err(e) if e.kind == ErrorKind::Conflict)
}

fn none_or_not_found<T>(answer: &Result<Option<T>, ErrorInfo>) -> bool {
    matches!(answer, Ok(None)) || not_found(answer)
}

#[async_trait]
impl<P> AppIntegrationsPort for Confirming<P>
where
    P: Deref + Send + Sync,
    P::Target: AppIntegrationsPort,
{
    async fn create_application(&self, req: &CreateApplication) -> Result<AppRef, ErrorInfo> {
        let first = self.inner.create_application(req).await;
        self.again("CreateApplication", first, conflict, || {
            self.inner.create_application(req)
        })
        .await
    }

    async fn find_application(
        &self,
        namespace: &str,
    ) -> Result<Option<ApplicationInfo>, ErrorInfo> {
        // An empty answer is believed: before a create a wrong one only costs a Duplicate
        // (resolved by looking again), and an undo has the saga's recorded output.
        let first = self.inner.find_application(namespace).await;
        self.again("ListApplications", first, not_found, || {
            self.inner.find_application(namespace)
        })
        .await
    }

    async fn delete_application(&self, id_or_arn: &str) -> Result<(), ErrorInfo> {
        let first = self.inner.delete_application(id_or_arn).await;
        self.again("DeleteApplication", first, not_found, || {
            self.inner.delete_application(id_or_arn)
        })
        .await
    }

    async fn get_application(
        &self,
        id_or_arn: &str,
    ) -> Result<Option<ApplicationDetails>, ErrorInfo> {
        let first = self.inner.get_application(id_or_arn).await;
        self.again("GetApplication", first, none_or_not_found, || {
            self.inner.get_application(id_or_arn)
        })
        .await
    }

    async fn update_application(
        &self,
        id_or_arn: &str,
        fields: &ApplicationFields,
        previous: Option<&ApplicationFields>,
    ) -> Result<(), ErrorInfo> {
        let first = self
            .inner
            .update_application(id_or_arn, fields, previous)
            .await;
        self.again("UpdateApplication", first, not_found, || {
            self.inner.update_application(id_or_arn, fields, previous)
        })
        .await
    }

    async fn tag_application(
        &self,
        arn: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ErrorInfo> {
        let first = self.inner.tag_application(arn, tags).await;
        self.again("TagResource", first, not_found, || {
            self.inner.tag_application(arn, tags)
        })
        .await
    }

    async fn untag_application(&self, arn: &str, keys: &[String]) -> Result<(), ErrorInfo> {
        let first = self.inner.untag_application(arn, keys).await;
        self.again("UntagResource", first, not_found, || {
            self.inner.untag_application(arn, keys)
        })
        .await
    }

    async fn list_application_associations(
        &self,
        id_or_arn: &str,
    ) -> Result<Vec<String>, ErrorInfo> {
        let first = self.inner.list_application_associations(id_or_arn).await;
        self.again("ListApplicationAssociations", first, not_found, || {
            self.inner.list_application_associations(id_or_arn)
        })
        .await
    }
}

#[async_trait]
impl<P> ConnectPort for Confirming<P>
where
    P: Deref + Send + Sync,
    P::Target: ConnectPort,
{
    async fn describe_instance(&self, instance_id: &str) -> Result<InstanceInfo, ErrorInfo> {
        let first = self.inner.describe_instance(instance_id).await;
        self.again("DescribeInstance", first, not_found, || {
            self.inner.describe_instance(instance_id)
        })
        .await
    }

    async fn find_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<Option<AssociationRef>, ErrorInfo> {
        // An empty answer is believed, an error is not (as for find_application).
        let first = self.inner.find_association(instance_id, app_arn).await;
        self.again("ListIntegrationAssociations", first, not_found, || {
            self.inner.find_association(instance_id, app_arn)
        })
        .await
    }

    async fn create_association(
        &self,
        instance_id: &str,
        app_arn: &str,
    ) -> Result<AssociationRef, ErrorInfo> {
        let first = self.inner.create_association(instance_id, app_arn).await;
        self.again("CreateIntegrationAssociation", first, conflict, || {
            self.inner.create_association(instance_id, app_arn)
        })
        .await
    }

    async fn delete_association(
        &self,
        instance_id: &str,
        association_id: &str,
    ) -> Result<(), ErrorInfo> {
        let first = self
            .inner
            .delete_association(instance_id, association_id)
            .await;
        self.again("DeleteIntegrationAssociation", first, not_found, || {
            self.inner.delete_association(instance_id, association_id)
        })
        .await
    }

    async fn profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
    ) -> Result<Vec<ProfileApplication>, ErrorInfo> {
        let first = self
            .inner
            .profile_applications(instance_id, profile_id)
            .await;
        self.again("ListSecurityProfileApplications", first, not_found, || {
            self.inner.profile_applications(instance_id, profile_id)
        })
        .await
    }

    async fn set_profile_applications(
        &self,
        instance_id: &str,
        profile_id: &str,
        apps: &[ProfileApplication],
    ) -> Result<(), ErrorInfo> {
        let first = self
            .inner
            .set_profile_applications(instance_id, profile_id, apps)
            .await;
        self.again("UpdateSecurityProfile", first, not_found, || {
            self.inner
                .set_profile_applications(instance_id, profile_id, apps)
        })
        .await?;
        let what = format!("security profile {profile_id} of {instance_id}");
        self.read_back(
            "UpdateSecurityProfile",
            &what,
            || self.inner.profile_applications(instance_id, profile_id),
            |now: &Vec<ProfileApplication>| same_grants(now, apps),
        )
        .await
    }

    async fn list_instances(&self) -> Result<Vec<String>, ErrorInfo> {
        let first = self.inner.list_instances().await;
        self.again("ListInstances", first, not_found, || {
            self.inner.list_instances()
        })
        .await
    }

    async fn list_security_profiles(&self, instance_id: &str) -> Result<Vec<String>, ErrorInfo> {
        let first = self.inner.list_security_profiles(instance_id).await;
        self.again("ListSecurityProfiles", first, not_found, || {
            self.inner.list_security_profiles(instance_id)
        })
        .await
    }
}

#[async_trait]
impl<P> IamPort for Confirming<P>
where
    P: Deref + Send + Sync,
    P::Target: IamPort,
{
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, ErrorInfo> {
        let first = self.inner.get_role_policy(role, policy).await;
        self.again("GetRolePolicy", first, none_or_not_found, || {
            self.inner.get_role_policy(role, policy)
        })
        .await
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), ErrorInfo> {
        self.propagated("PutRolePolicy", || {
            self.inner.put_role_policy(role, policy, document)
        })
        .await?;
        self.policy_read_back("PutRolePolicy", role, policy, |doc| {
            doc.is_some_and(|d| crate::policy::same_document(d, document))
        })
        .await
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), ErrorInfo> {
        let first = self
            .propagated("DeleteRolePolicy", || {
                self.inner.delete_role_policy(role, policy)
            })
            .await;
        let answer = self
            .again("DeleteRolePolicy", first, not_found, || {
                self.inner.delete_role_policy(role, policy)
            })
            .await;
        match &answer {
            Err(e) if e.kind != ErrorKind::NotFound => answer,
            // Absent, deleted now or before: make sure a read no longer shows it.
            _ => self
                .policy_read_back("DeleteRolePolicy", role, policy, |doc| doc.is_none())
                .await
                .and(answer),
        }
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, ErrorInfo> {
        let first = self.inner.list_role_policies(role).await;
        self.again("ListRolePolicies", first, not_found, || {
            self.inner.list_role_policies(role)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testkit::{FakeWorld, ManualClock};

    fn not_found_error(code: &str) -> ErrorInfo {
        ErrorInfo::new(
            ErrorKind::NotFound,
            code,
            "not found (a contradicting answer)",
        )
    }

    fn confirming(world: &Arc<FakeWorld>) -> (Confirming<Arc<FakeWorld>>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let c = Confirming::new(world.clone(), clock.clone(), ConfirmPolicy::default());
        (c, clock)
    }

    #[tokio::test]
    async fn a_delete_answered_not_found_is_sent_again_and_removes_what_is_there() {
        let world = Arc::new(FakeWorld::standard());
        let app = world.seed_application("legacy", "Legacy", Default::default());
        world.fail_nth(
            "delete_application",
            1,
            not_found_error("ResourceNotFoundException"),
        );
        let (c, clock) = confirming(&world);
        AppIntegrationsPort::delete_application(&c, &app.id)
            .await
            .unwrap();
        assert!(world.get_application(&app.id).await.unwrap().is_none());
        assert_eq!(world.calls("delete_application"), 2);
        assert_eq!(clock.slept(), ConfirmPolicy::default().delay);
    }

    #[tokio::test]
    async fn a_genuine_absence_is_believed_after_one_more_question() {
        let world = Arc::new(FakeWorld::standard());
        let (c, _) = confirming(&world);
        let err = AppIntegrationsPort::delete_application(&c, "missing")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(world.calls("delete_application"), 2);
        assert!(c.get_application("nobody").await.unwrap().is_none());
        assert_eq!(world.calls("get_application"), 2);
    }

    #[tokio::test]
    async fn a_lookup_answered_not_found_gets_the_second_answer() {
        let world = Arc::new(FakeWorld::standard());
        let app = world.seed_application("legacy", "Legacy", Default::default());
        let instance = world.add_instance("i-confirm", "confirm", true);
        let assoc = world.seed_association(&instance.id, &app.arn);
        world.fail_nth(
            "find_association",
            1,
            not_found_error("ResourceNotFoundException"),
        );
        let (c, _) = confirming(&world);
        let found = c.find_association(&instance.id, &app.arn).await.unwrap();
        assert_eq!(found, Some(assoc));
    }

    #[tokio::test]
    async fn a_present_answer_is_not_asked_again() {
        let world = Arc::new(FakeWorld::standard());
        world.seed_application("legacy", "Legacy", Default::default());
        let (c, clock) = confirming(&world);
        assert!(c.find_application("legacy").await.unwrap().is_some());
        assert_eq!(world.calls("find_application"), 1);
        assert_eq!(clock.slept(), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_iam_write_refused_while_propagating_is_retried_then_the_refusal_believed() {
        let world = Arc::new(FakeWorld::standard());
        let instance = world.add_instance("i-iam", "iam", true);
        let role = world.instance_role_name(&instance.id).unwrap();
        let denied = crate::testkit::fake_world::access_denied();
        world.fail_nth("put_role_policy", 1, denied.clone());
        world.fail_nth("put_role_policy", 2, not_found_error("NoSuchEntity"));
        let (c, clock) = confirming(&world);
        c.put_role_policy(&role, "p", r#"{"Version":"2012-10-17","Statement":[]}"#)
            .await
            .unwrap();
        assert_eq!(world.calls("put_role_policy"), 3);
        assert_eq!(clock.slept(), Duration::from_millis(1500));

        world.fail_always("put_role_policy", denied);
        let err = c.put_role_policy(&role, "p", "{}").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Denied);
        assert_eq!(
            world.calls("put_role_policy"),
            3 + 4,
            "bounded: four attempts"
        );
    }

    /// IAM as it is right after a change: the next `lag` reads of a policy answer the document
    /// it had before the last write.
    struct Lagging {
        world: Arc<FakeWorld>,
        lag: u32,
        state: std::sync::Mutex<(Option<String>, u32)>,
    }

    #[async_trait]
    impl IamPort for Lagging {
        async fn get_role_policy(
            &self,
            role: &str,
            policy: &str,
        ) -> Result<Option<String>, ErrorInfo> {
            let fresh = self.world.get_role_policy(role, policy).await?;
            let mut state = self.state.lock().unwrap();
            if state.1 > 0 {
                state.1 -= 1;
                return Ok(state.0.clone());
            }
            Ok(fresh)
        }
        async fn put_role_policy(
            &self,
            role: &str,
            policy: &str,
            doc: &str,
        ) -> Result<(), ErrorInfo> {
            let before = self.world.get_role_policy(role, policy).await?;
            self.world.put_role_policy(role, policy, doc).await?;
            *self.state.lock().unwrap() = (before, self.lag);
            Ok(())
        }
        async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), ErrorInfo> {
            let before = self.world.get_role_policy(role, policy).await?;
            self.world.delete_role_policy(role, policy).await?;
            *self.state.lock().unwrap() = (before, self.lag);
            Ok(())
        }
        async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, ErrorInfo> {
            self.world.list_role_policies(role).await
        }
    }

    fn lagging(
        lag: u32,
    ) -> (
        Confirming<Arc<Lagging>>,
        Arc<Lagging>,
        Arc<ManualClock>,
        String,
    ) {
        let world = Arc::new(FakeWorld::standard());
        let instance = world.add_instance("i-lag", "lag", true);
        let role = world.instance_role_name(&instance.id).unwrap();
        let iam = Arc::new(Lagging {
            world,
            lag,
            state: Default::default(),
        });
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let c = Confirming::new(iam.clone(), clock.clone(), ConfirmPolicy::default());
        (c, iam, clock, role)
    }

    const OLD: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;
    const NEW: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

    #[tokio::test]
    async fn a_policy_write_is_read_back_until_iam_shows_it() {
        let (c, iam, clock, role) = lagging(2);
        iam.world.put_role_policy(&role, "p", OLD).await.unwrap();
        c.put_role_policy(&role, "p", NEW).await.unwrap();
        // Two stale reads, then the new document: waits of 0.5 s and 1 s.
        assert_eq!(clock.slept(), Duration::from_millis(1500));
        let seen = c.get_role_policy(&role, "p").await.unwrap().unwrap();
        assert!(crate::policy::same_document(&seen, NEW));
    }

    #[tokio::test]
    async fn a_policy_write_that_never_shows_is_a_retryable_error() {
        let (c, iam, _, role) = lagging(100);
        iam.world.put_role_policy(&role, "p", OLD).await.unwrap();
        let err = c.put_role_policy(&role, "p", NEW).await.unwrap_err();
        assert_eq!(err.code, "WriteNotConfirmed");
        assert!(err.is_retryable(), "the step runs again: {err}");
        assert!(err.message.contains("the state before the write"), "{err}");
    }

    #[tokio::test]
    async fn a_policy_delete_is_read_back_until_iam_no_longer_shows_it() {
        let (c, iam, clock, role) = lagging(1);
        iam.world.put_role_policy(&role, "p", NEW).await.unwrap();
        c.delete_role_policy(&role, "p").await.unwrap();
        assert_eq!(clock.slept(), Duration::from_millis(500));
        assert!(iam
            .world
            .get_role_policy(&role, "p")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_write_seen_at_once_costs_one_read_and_no_wait() {
        let world = Arc::new(FakeWorld::standard());
        let instance = world.add_instance("i-now", "now", true);
        let role = world.instance_role_name(&instance.id).unwrap();
        let (c, clock) = confirming(&world);
        c.put_role_policy(&role, "p", NEW).await.unwrap();
        assert_eq!(world.calls("get_role_policy"), 1);
        assert_eq!(clock.slept(), Duration::ZERO);
    }
}
