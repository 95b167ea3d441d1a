//! The emulated world: applications, associations, instances with their security profiles,
//! IAM roles and callers. Maps are `BTreeMap`s so the JSON dump is deterministic and two
//! "pristine" worlds compare equal.

use crate::appintegrations::{
    ApplicationConfig, ApplicationSourceConfig, AuthConfig, ExternalUrlConfig, IframeConfig,
    Publication, Subscription,
};
use crate::connect::Grant;
use crate::error::SandboxError;
use crate::seed::{policy_text, SeedConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An AppIntegrations application.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Application {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub namespace: String,
    pub description: Option<String>,
    pub source: ApplicationSourceConfig,
    pub subscriptions: Option<Vec<Subscription>>,
    pub publications: Option<Vec<Publication>>,
    pub tags: BTreeMap<String, String>,
    pub permissions: Option<Vec<String>>,
    pub is_service: Option<bool>,
    pub initialization_timeout: Option<i64>,
    pub application_config: Option<ApplicationConfig>,
    pub iframe_config: Option<IframeConfig>,
    pub application_type: Option<String>,
    pub auth_config: Option<AuthConfig>,
    pub created_ms: u64,
    pub modified_ms: u64,
}

/// An AppIntegrations application association (made by Connect, ClientId
/// `connect.amazonaws.com`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppAssociation {
    pub id: String,
    pub arn: String,
    pub application_id: String,
    pub application_arn: String,
    pub client_id: String,
    pub integration_association_id: Option<String>,
}

/// A Connect integration association.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IntegrationAssociation {
    pub id: String,
    pub arn: String,
    pub instance_id: String,
    pub integration_type: String,
    pub integration_arn: String,
    pub app_association_id: Option<String>,
    pub modified_ms: u64,
}

/// A Connect instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Instance {
    pub id: String,
    pub arn: String,
    pub alias: String,
    pub access_url: String,
    pub service_role: Option<String>,
    pub status: String,
    pub identity_management_type: String,
    pub created_ms: u64,
    pub security_profiles: BTreeMap<String, SecurityProfile>,
}

/// A Connect security profile and its application grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecurityProfile {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub applications: Vec<Grant>,
    pub modified_ms: u64,
}

/// An IAM role and its inline policies (raw JSON text as put).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Role {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub description: Option<String>,
    pub assume_role_policy: String,
    pub inline_policies: BTreeMap<String, String>,
    pub protected: bool,
    pub created_ms: u64,
}

/// A principal with identity policies, for `SimulatePrincipalPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Caller {
    pub arn: String,
    pub policies: BTreeMap<String, String>,
}

/// What a ClientToken produced, so a replay returns the first result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub request: Value,
    pub application_id: String,
}

/// The whole emulated account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct World {
    pub account_id: String,
    pub region: String,
    pub applications: BTreeMap<String, Application>,
    pub application_associations: BTreeMap<String, AppAssociation>,
    pub instances: BTreeMap<String, Instance>,
    pub integration_associations: BTreeMap<String, IntegrationAssociation>,
    pub roles: BTreeMap<String, Role>,
    pub callers: BTreeMap<String, Caller>,
    #[serde(skip)]
    pub client_tokens: BTreeMap<String, TokenRecord>,
    #[serde(skip)]
    pub rng: fastrand::Rng,
}

const DEFAULT_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const CONNECT_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"connect.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// FNV-1a, to derive stable identifiers (SLR suffixes, role ids) from names.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn stable_chars(seed_text: &str, alphabet: &[u8], len: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(stable_hash(seed_text));
    (0..len)
        .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
        .collect()
}

/// A lower-case UUID v4 from the world's seeded generator (so runs are reproducible).
pub(crate) fn uuid(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    for byte in &mut b {
        *byte = rng.u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl World {
    /// Builds the world a seed describes.
    pub(crate) fn from_seed(
        seed: &SeedConfig,
        now_ms: u64,
        rng_seed: u64,
    ) -> Result<Self, SandboxError> {
        let bad = |msg: String| Err(SandboxError::InvalidSeed(msg));
        if seed.account_id.len() != 12 || !seed.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("account_id {:?} is not 12 digits", seed.account_id));
        }
        if seed.region.is_empty()
            || !seed
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(format!("region {:?} is not a Region name", seed.region));
        }
        let mut world = World {
            account_id: seed.account_id.clone(),
            region: seed.region.clone(),
            applications: BTreeMap::new(),
            application_associations: BTreeMap::new(),
            instances: BTreeMap::new(),
            integration_associations: BTreeMap::new(),
            roles: BTreeMap::new(),
            callers: BTreeMap::new(),
            client_tokens: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(rng_seed),
        };
        for role in &seed.roles {
            let path = role.path.clone().unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/') || !path.ends_with('/') {
                return bad(format!(
                    "role {} path {path:?} must start and end with /",
                    role.name
                ));
            }
            let trust = role
                .assume_role_policy
                .as_ref()
                .map_or_else(|| DEFAULT_TRUST.to_owned(), policy_text);
            let inline = role
                .inline_policies
                .iter()
                .map(|(name, doc)| (name.clone(), policy_text(doc)))
                .collect();
            world.add_role(
                &role.name,
                &path,
                trust,
                inline,
                role.protected,
                role.description.clone(),
                now_ms,
            )?;
        }
        for inst in &seed.instances {
            if world.instances.contains_key(&inst.id) {
                return bad(format!("instance id {} appears twice", inst.id));
            }
            let service_role = if inst.slr {
                let suffix = inst
                    .slr_suffix
                    .clone()
                    .unwrap_or_else(|| stable_chars(&inst.id, ALNUM, 20));
                let name = format!("AWSServiceRoleForAmazonConnect_{suffix}");
                let inline = inst
                    .slr_inline_policies
                    .iter()
                    .map(|(n, doc)| (n.clone(), policy_text(doc)))
                    .collect();
                let arn = world.add_role(
                    &name,
                    "/aws-service-role/connect.amazonaws.com/",
                    CONNECT_TRUST.to_owned(),
                    inline,
                    false,
                    None,
                    now_ms,
                )?;
                Some(arn)
            } else {
                inst.service_role.clone()
            };
            let arn = format!(
                "arn:aws:connect:{}:{}:instance/{}",
                world.region, world.account_id, inst.id
            );
            let mut profiles = BTreeMap::new();
            for sp in &inst.security_profiles {
                if profiles.contains_key(&sp.id) {
                    return bad(format!(
                        "security profile {} appears twice in instance {}",
                        sp.id, inst.id
                    ));
                }
                profiles.insert(
                    sp.id.clone(),
                    SecurityProfile {
                        id: sp.id.clone(),
                        arn: format!("{arn}/security-profile/{}", sp.id),
                        name: sp.name.clone(),
                        description: sp.description.clone(),
                        permissions: sp.permissions.clone(),
                        applications: sp
                            .applications
                            .iter()
                            .map(|g| Grant {
                                namespace: Some(g.namespace.clone()),
                                application_permissions: Some(g.permissions.clone()),
                                r#type: None,
                            })
                            .collect(),
                        modified_ms: now_ms,
                    },
                );
            }
            world.instances.insert(
                inst.id.clone(),
                Instance {
                    id: inst.id.clone(),
                    arn,
                    alias: inst.alias.clone(),
                    access_url: inst
                        .access_url
                        .clone()
                        .unwrap_or_else(|| format!("https://{}.my.connect.aws", inst.alias)),
                    service_role,
                    status: inst.status.clone().unwrap_or_else(|| "ACTIVE".to_owned()),
                    identity_management_type: "CONNECT_MANAGED".to_owned(),
                    created_ms: now_ms,
                    security_profiles: profiles,
                },
            );
        }
        for caller in &seed.callers {
            world.callers.insert(
                caller.arn.clone(),
                Caller {
                    arn: caller.arn.clone(),
                    policies: caller
                        .policies
                        .iter()
                        .map(|(n, doc)| (n.clone(), policy_text(doc)))
                        .collect(),
                },
            );
        }
        for app in &seed.applications {
            let id = match &app.id {
                Some(id) => id.clone(),
                None => uuid(&mut world.rng),
            };
            if world
                .applications
                .values()
                .any(|a| a.namespace == app.namespace)
            {
                return bad(format!("namespace {} appears twice", app.namespace));
            }
            let arn = world.application_arn(&id);
            world.applications.insert(
                id.clone(),
                Application {
                    id: id.clone(),
                    arn,
                    name: app.name.clone(),
                    namespace: app.namespace.clone(),
                    description: None,
                    source: ApplicationSourceConfig {
                        external_url_config: Some(ExternalUrlConfig {
                            access_url: Some(app.access_url.clone()),
                            approved_origins: None,
                        }),
                    },
                    subscriptions: None,
                    publications: None,
                    tags: app.tags.clone(),
                    permissions: Some(app.permissions.clone()),
                    is_service: None,
                    initialization_timeout: None,
                    application_config: None,
                    iframe_config: None,
                    application_type: None,
                    auth_config: None,
                    created_ms: now_ms,
                    modified_ms: now_ms,
                },
            );
            for instance_id in &app.associated_instances {
                if !world.instances.contains_key(instance_id) {
                    return bad(format!(
                        "application {} is associated with unknown instance {instance_id}",
                        app.namespace
                    ));
                }
                world.associate(
                    instance_id,
                    "APPLICATION",
                    &world.application_arn(&id),
                    Some(&id),
                    now_ms,
                );
            }
        }
        Ok(world)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_role(
        &mut self,
        name: &str,
        path: &str,
        trust: String,
        inline: BTreeMap<String, String>,
        protected: bool,
        description: Option<String>,
        now_ms: u64,
    ) -> Result<String, SandboxError> {
        if self.roles.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(SandboxError::InvalidSeed(format!(
                "role {name} appears twice (role names are case-insensitive)"
            )));
        }
        let arn = format!("arn:aws:iam::{}:role{path}{name}", self.account_id);
        let id = format!(
            "AROA{}",
            stable_chars(&arn, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17)
        );
        self.roles.insert(
            name.to_owned(),
            Role {
                name: name.to_owned(),
                path: path.to_owned(),
                id,
                arn: arn.clone(),
                description,
                assume_role_policy: trust,
                inline_policies: inline,
                protected,
                created_ms: now_ms,
            },
        );
        Ok(arn)
    }

    /// `arn:aws:app-integrations:<region>:<account>:application/<id>`.
    pub(crate) fn application_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:app-integrations:{}:{}:application/{id}",
            self.region, self.account_id
        )
    }

    /// A fresh UUID.
    pub(crate) fn new_id(&mut self) -> String {
        uuid(&mut self.rng)
    }

    /// Resolves an application id or ARN (with an optional `:qualifier`) to its id.
    pub(crate) fn resolve_application(&self, identifier: &str) -> Option<String> {
        let prefix = format!(
            "arn:aws:app-integrations:{}:{}:application/",
            self.region, self.account_id
        );
        let id = identifier.strip_prefix(&prefix).unwrap_or(identifier);
        let id = id.split(':').next().unwrap_or(id);
        self.applications.contains_key(id).then(|| id.to_owned())
    }

    /// Resolves an instance id or ARN to its id.
    pub(crate) fn resolve_instance(&self, identifier: &str) -> Option<String> {
        let prefix = format!(
            "arn:aws:connect:{}:{}:instance/",
            self.region, self.account_id
        );
        let id = identifier.strip_prefix(&prefix).unwrap_or(identifier);
        self.instances.contains_key(id).then(|| id.to_owned())
    }

    /// Records a Connect integration association and, for an application, the AppIntegrations
    /// application association Connect makes on the caller's behalf. Returns the association id.
    pub(crate) fn associate(
        &mut self,
        instance_id: &str,
        integration_type: &str,
        integration_arn: &str,
        application_id: Option<&str>,
        now_ms: u64,
    ) -> String {
        let id = self.new_id();
        let arn = format!(
            "arn:aws:connect:{}:{}:instance/{instance_id}/integration-association/{id}",
            self.region, self.account_id
        );
        let app_association_id = application_id.map(|app_id| {
            let assoc_id = self.new_id();
            let record = AppAssociation {
                arn: format!(
                    "arn:aws:app-integrations:{}:{}:application-association/{app_id}/{assoc_id}",
                    self.region, self.account_id
                ),
                id: assoc_id.clone(),
                application_id: app_id.to_owned(),
                application_arn: integration_arn.to_owned(),
                client_id: "connect.amazonaws.com".to_owned(),
                integration_association_id: Some(id.clone()),
            };
            self.application_associations
                .insert(assoc_id.clone(), record);
            assoc_id
        });
        self.integration_associations.insert(
            id.clone(),
            IntegrationAssociation {
                id: id.clone(),
                arn,
                instance_id: instance_id.to_owned(),
                integration_type: integration_type.to_owned(),
                integration_arn: integration_arn.to_owned(),
                app_association_id,
                modified_ms: now_ms,
            },
        );
        id
    }

    /// Removes an integration association and the application association it made.
    pub(crate) fn disassociate(&mut self, association_id: &str) {
        if let Some(assoc) = self.integration_associations.remove(association_id) {
            if let Some(app_assoc) = assoc.app_association_id {
                self.application_associations.remove(&app_assoc);
            }
        }
    }

    /// The world as a [`Snapshot`] (JSON), with the seed it started from.
    pub(crate) fn snapshot(&self, seed: &SeedConfig) -> Value {
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT,
            seed: seed.clone(),
            world: self.clone(),
            client_tokens: self.client_tokens.clone(),
            rng_state: self.rng.get_seed(),
        };
        serde_json::to_value(&snapshot).unwrap_or(Value::Null)
    }

    /// The world and seed a [`World::snapshot`] holds.
    pub(crate) fn from_snapshot(value: &Value) -> Result<(Self, SeedConfig), SandboxError> {
        let snapshot: Snapshot = serde_json::from_value(value.clone())
            .map_err(|e| SandboxError::Snapshot(e.to_string()))?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SandboxError::Snapshot(format!(
                "format {} is not the supported format {SNAPSHOT_FORMAT}",
                snapshot.format
            )));
        }
        let mut world = snapshot.world;
        if let Some(a) = world
            .integration_associations
            .values()
            .find(|a| !world.instances.contains_key(&a.instance_id))
        {
            return Err(SandboxError::Snapshot(format!(
                "association {} names unknown instance {}",
                a.id, a.instance_id
            )));
        }
        world.client_tokens = snapshot.client_tokens;
        world.rng = fastrand::Rng::with_seed(snapshot.rng_state);
        Ok((world, snapshot.seed))
    }

    /// The full state as JSON; timestamps are left out unless asked for, so that worlds that
    /// differ only in when things were touched compare equal.
    pub(crate) fn dump(&self, with_timestamps: bool) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if !with_timestamps {
            strip_keys(&mut value, &["created_ms", "modified_ms"]);
        }
        value
    }
}

/// The version of the snapshot layout; a snapshot of another version is refused.
const SNAPSHOT_FORMAT: u32 = 1;

/// Everything needed to carry on in a later process where a run left off: the world with its
/// timestamps (top level, the same keys as the dump), the seed it started from (for `reset`),
/// the ClientToken replay records and the id generator's position (so ids made after a
/// restore never repeat earlier ones).
#[derive(Serialize, Deserialize)]
struct Snapshot {
    #[serde(rename = "snapshot_format")]
    format: u32,
    seed: SeedConfig,
    #[serde(flatten)]
    world: World,
    client_tokens: BTreeMap<String, TokenRecord>,
    rng_state: u64,
}

fn strip_keys(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for key in keys {
                map.remove(*key);
            }
            for v in map.values_mut() {
                strip_keys(v, keys);
            }
        }
        Value::Array(items) => {
            for v in items {
                strip_keys(v, keys);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_builds_and_dumps_deterministically() {
        let seed = SeedConfig::demo();
        let a = World::from_seed(&seed, 0, 7).map(|w| w.dump(false));
        let b = World::from_seed(&seed, 99, 7).map(|w| w.dump(false));
        assert!(a.is_ok());
        assert_eq!(a.ok(), b.ok());
    }

    #[test]
    fn a_snapshot_restores_the_same_world_tokens_and_id_stream() {
        let seed = SeedConfig::demo();
        let mut world = World::from_seed(&seed, 5, 11).unwrap_or_else(|e| panic!("{e}"));
        let instance = world.instances.keys().next().cloned().unwrap_or_default();
        let app_arn = world.application_arn("app-1");
        world.associate(&instance, "APPLICATION", &app_arn, None, 6);
        world.client_tokens.insert(
            "token-1".into(),
            TokenRecord {
                request: serde_json::json!({"Name": "x"}),
                application_id: "app-1".into(),
            },
        );
        let snap = world.snapshot(&seed);

        let (mut back, back_seed) = World::from_snapshot(&snap).unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(back_seed, seed);
        assert_eq!(back.dump(true), world.dump(true));
        assert_eq!(back.client_tokens, world.client_tokens);
        assert_eq!(back.snapshot(&seed), snap);
        assert_eq!(back.new_id(), world.new_id(), "the id stream carries on");
    }

    #[test]
    fn a_snapshot_of_another_format_or_shape_is_refused() {
        let seed = SeedConfig::demo();
        let world = World::from_seed(&seed, 0, 1).unwrap_or_else(|e| panic!("{e}"));
        let mut snap = world.snapshot(&seed);
        snap["snapshot_format"] = serde_json::json!(99);
        assert!(matches!(
            World::from_snapshot(&snap),
            Err(SandboxError::Snapshot(m)) if m.contains("99")
        ));
        assert!(matches!(
            World::from_snapshot(&serde_json::json!({"applications": 1})),
            Err(SandboxError::Snapshot(_))
        ));
    }

    #[test]
    fn uuids_are_v4_shaped() {
        let mut rng = fastrand::Rng::with_seed(1);
        let id = uuid(&mut rng);
        assert!(crate::validate::ARN_OR_UUID.is_match(&id), "{id}");
    }
}
