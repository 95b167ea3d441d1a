//! The application spec: what a portal form, an approved change ticket or the CLI submits to
//! onboard one third-party app into the Amazon Connect agent workspace.
//!
//! The spec is a product-level document (camelCase JSON), not an AWS request: it names the
//! AppIntegrations application fields, the Connect instances to associate it with and the
//! security profiles to grant it in. [`parse_spec`] turns bytes into a spec with precise error
//! paths; `ApplicationSpec::validate` (in [`crate::validation`]) checks every rule at once.
//!
//! Every struct denies unknown fields so a typo (`approvedOrigin`) is an error, not a silently
//! dropped setting. Maps are `BTreeMap`s so serialization (and so
//! [`ApplicationSpec::payload_hash`]) is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::problem::{Problem, ValidationErrors};

/// The longest namespace AppIntegrations accepts (`ApplicationNamespace` max 211).
pub const NAMESPACE_MAX: usize = 211;

/// One application to onboard: the AppIntegrations application, where to associate it, and who
/// gets access. Field names follow the JSON body the portal and ticket webhooks send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSpec {
    /// AppIntegrations `Name`: shown to agents in the Apps launcher and in security profiles.
    pub display_name: String,
    /// AppIntegrations `Namespace` (unique, immutable). When absent it is derived from the
    /// access URL; see [`ApplicationSpec::effective_namespace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// AppIntegrations `Description` (not shown to agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `ExternalUrlConfig.AccessUrl`: the page the agent workspace iframes.
    pub access_url: String,
    /// `ExternalUrlConfig.ApprovedOrigins`: extra origins the app navigates to (e.g. its IdP).
    /// Empty means "omit" (the model requires 1..50 when present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_origins: Vec<String>,
    /// Agent-workspace event/request permissions, e.g. `User.Details.View`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Deprecated AppIntegrations `Subscriptions` (events the app listens to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<Subscription>,
    /// Deprecated AppIntegrations `Publications` (events the app emits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// AppIntegrations `IframeConfig`; absent means the service default (see [`IframeSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iframe: Option<IframeSpec>,
    /// AppIntegrations `InitializationTimeout`: how long the app has to connect, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_timeout_ms: Option<u32>,
    /// AppIntegrations `ApplicationConfig.ContactHandling.Scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_scope: Option<ContactScope>,
    /// AppIntegrations `ApplicationType`; absent means the service default (`STANDARD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<ApplicationType>,
    /// AppIntegrations `Tags`. Empty means "omit" (the model requires 1..200 when present).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Connect instances to associate the app with: bare instance ids or instance ARNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// Security profiles that get `ACCESS` to the app, per instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_profiles: Vec<ProfileGrant>,
    /// The team that owns the application besides its requester: members of this group (the
    /// identity provider's groups claim) may change, pause, offboard and read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_group: Option<String>,
    /// Who asked, through which channel; kept in the saga record for audit.
    pub requester: Requester,
}

/// A deprecated AppIntegrations `Subscription`: an event the app listens to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// Event name in `source::name` form, e.g. `crm.example.com::contactSelected`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A deprecated AppIntegrations `Publication`: an event the app emits, with its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Publication {
    /// Event name in `source::name` form.
    pub event: String,
    /// The event's schema (AppIntegrations `EventDefinitionSchema`, 1..10240 characters).
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// AppIntegrations `IframeConfig`: the iframe's `allow` features and `sandbox` tokens.
///
/// When the spec has no `iframe`, AppIntegrations applies its default (sandbox `allow-forms`,
/// `allow-popups`, `allow-same-origin`, `allow-scripts`; no `allow`). When `iframe` is present,
/// both lists are sent exactly as given — so `{}` here means "grant nothing", which is why the
/// validator warns when `sandbox` lacks `allow-scripts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IframeSpec {
    /// Permissions-policy features, e.g. `microphone`, `clipboard-write`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Sandbox tokens, e.g. `allow-scripts`.
    #[serde(default)]
    pub sandbox: Vec<String>,
}

/// AppIntegrations `ContactHandling.Scope`: when the app refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactScope {
    /// The app refreshes for each contact.
    PerContact,
    /// The app refreshes only with each new browser session.
    CrossContacts,
}

/// AppIntegrations `ApplicationType`. Only the two kinds this product onboards are accepted;
/// `MCP_SERVER` and `A2A_SERVER` need gateway/auth settings the spec does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplicationType {
    /// An iframe app in the agent workspace.
    Standard,
    /// A headless app that runs in the background of the workspace.
    Service,
}

/// Security profiles of one instance that should get `ACCESS` to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileGrant {
    /// The instance (id or ARN); must also appear in `instances`.
    pub instance: String,
    /// Security profile ids or ARNs in that instance.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// Who submitted the spec, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requester {
    pub source: RequestSource,
    /// The submitting identity (portal user, ticket approver, CLI caller ARN).
    pub principal: String,
    /// The change ticket's id; required when `source` is `TICKET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
}

/// The intake channel a spec came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestSource {
    Portal,
    Ticket,
    Cli,
}

/// Parses a JSON spec. Any serde failure (syntax, unknown field, wrong type, missing field)
/// becomes one [`Problem`] whose `field` is the exact JSON path (`$` for the document itself),
/// so a portal can point at the offending input.
pub fn parse_spec(bytes: &[u8]) -> Result<ApplicationSpec, ValidationErrors> {
    parse_object(
        bytes,
        "Send the spec as one JSON object: {\"displayName\": ..., \"accessUrl\": ..., ...}.",
    )
}

/// Parses one JSON object of type `T` the way [`parse_spec`] does (problems carry the JSON
/// path); `shape_fix` tells the sender what the object should look like.
pub fn parse_object<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    shape_fix: &str,
) -> Result<T, ValidationErrors> {
    // serde also accepts a struct written as a positional array; a body must be an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ValidationErrors::from(Problem::new(
            "$",
            "the body is not a JSON object",
            shape_fix,
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ValidationErrors::from(serde_problem(&e)))?;
    // Trailing data after the object (e.g. two objects back to back).
    de.end().map_err(|e| {
        ValidationErrors::from(Problem::new(
            "$",
            format!("the body has data after the JSON object: {e}"),
            "Send exactly one JSON object and nothing after it.",
        ))
    })?;
    Ok(value)
}

/// Turns a path-tracked serde error into a problem with a specific fix.
fn serde_problem(err: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = err.inner();
    let mut path = err.path().to_string();
    if path == "." || path.is_empty() {
        path = "$".to_string();
    }
    let msg = inner.to_string();
    let at = format!("line {} column {}", inner.line(), inner.column());
    if inner.is_syntax() || inner.is_eof() {
        return Problem::new(
            path,
            format!("the body is not valid JSON: {msg}"),
            format!("Send a well-formed JSON object; check quotes, commas and brackets near {at}."),
        );
    }
    if inner.is_io() {
        return Problem::new(
            path,
            format!("the body could not be read: {msg}"),
            "Send the body again.",
        );
    }
    let child = |name: &str| {
        if path == "$" {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = backticked(&msg, "missing field `") {
        let field = child(name);
        return Problem::new(
            field,
            format!("is required but missing ({msg})"),
            format!("Add `{name}` to the object."),
        );
    }
    if let Some(name) = backticked(&msg, "unknown field `") {
        return Problem::new(
            path,
            format!("is not an accepted field ({msg})"),
            format!("Remove `{name}` or fix its spelling to one of the expected fields listed."),
        );
    }
    if let Some(value) = backticked(&msg, "unknown variant `") {
        let extra = if value == "MCP_SERVER" || value == "A2A_SERVER" {
            " This service onboards only STANDARD and SERVICE applications; create MCP/A2A servers \
             directly in AppIntegrations."
        } else {
            ""
        };
        return Problem::new(
            path,
            format!("has an unsupported value ({msg})"),
            format!("Use one of the expected values listed (they are case-sensitive).{extra}"),
        );
    }
    if let Some(name) = backticked(&msg, "duplicate field `") {
        return Problem::new(
            child(name),
            format!("appears more than once ({msg})"),
            format!("Send `{name}` only once."),
        );
    }
    Problem::new(
        path,
        format!("has the wrong type or value ({msg})"),
        "Change the value to what the message expects (e.g. a string in quotes, a list in [ ], \
         or a whole number without quotes).",
    )
}

/// The text between `prefix` and the next backtick, if `msg` starts with `prefix`.
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// The parts of a Connect ARN that must agree across one spec: an application is regional, so
/// every instance (and profile) it touches must be in the same partition, Region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArnScope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl std::fmt::Display for ArnScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {}, Region {}, account {}",
            self.partition, self.region, self.account
        )
    }
}

/// A parsed Connect ARN: its scope and the resource part after `:`.
fn parse_connect_arn(arn: &str) -> Option<(ArnScope, &str)> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    let partition_ok = partition.starts_with("aws")
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-');
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if !(partition_ok && service == "connect" && region_ok && account_ok) {
        return None;
    }
    let scope = ArnScope {
        partition: partition.to_string(),
        region: region.to_string(),
        account: account.to_string(),
    };
    Some((scope, resource))
}

/// `true` for the canonical 8-4-4-4-12 hex UUID form (either case).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The bare, lower-cased instance id from an instance id or an instance ARN
/// (`arn:aws:connect:REGION:ACCOUNT:instance/ID`); `None` if it is neither. Connect generates
/// lower-case UUIDs, so lower-casing lets `ABC…` and `abc…` count as the same instance.
pub fn instance_id(id_or_arn: &str) -> Option<String> {
    if is_uuid(id_or_arn) {
        return Some(id_or_arn.to_ascii_lowercase());
    }
    let (_, resource) = parse_connect_arn(id_or_arn)?;
    let id = resource.strip_prefix("instance/")?;
    is_uuid(id).then(|| id.to_ascii_lowercase())
}

/// The bare, lower-cased security profile id from a profile id or a profile ARN
/// (`arn:aws:connect:REGION:ACCOUNT:instance/INSTANCE_ID/security-profile/PROFILE_ID`);
/// `None` if it is neither.
pub fn profile_id(id_or_arn: &str) -> Option<String> {
    if is_uuid(id_or_arn) {
        return Some(id_or_arn.to_ascii_lowercase());
    }
    profile_arn_parts(id_or_arn).map(|(_, _, profile)| profile)
}

/// The instance id embedded in a security profile ARN; `None` for a bare id or a malformed
/// value. Lets validation check that a profile ARN belongs to the instance it is listed under.
pub fn profile_arn_instance(arn: &str) -> Option<String> {
    profile_arn_parts(arn).map(|(_, instance, _)| instance)
}

/// Scope, instance id and profile id of a security profile ARN.
fn profile_arn_parts(arn: &str) -> Option<(ArnScope, String, String)> {
    let (scope, resource) = parse_connect_arn(arn)?;
    let rest = resource.strip_prefix("instance/")?;
    let (instance, profile) = rest.split_once("/security-profile/")?;
    (is_uuid(instance) && is_uuid(profile)).then(|| {
        (
            scope,
            instance.to_ascii_lowercase(),
            profile.to_ascii_lowercase(),
        )
    })
}

/// The partition/Region/account of a Connect instance or security profile ARN; `None` for a
/// bare id (which carries no scope) or a malformed value.
pub(crate) fn arn_scope(id_or_arn: &str) -> Option<ArnScope> {
    if instance_id(id_or_arn).is_some() || profile_id(id_or_arn).is_some() {
        parse_connect_arn(id_or_arn).map(|(scope, _)| scope)
    } else {
        None
    }
}

/// Characters allowed in a namespace (`^[a-zA-Z0-9/._-]+$`).
pub(crate) fn is_namespace_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')
}

impl ApplicationSpec {
    /// The namespace the application will be created with.
    ///
    /// If `namespace` is given it is returned unchanged (validation checks it). Otherwise it is
    /// derived from `accessUrl`, as the console recommends for one-app-per-URL, but in a form the
    /// `^[a-zA-Z0-9/._-]+$` pattern accepts (no `:`):
    ///
    /// 1. the host, lower-cased (IDNs in punycode);
    /// 2. `-PORT` if the URL has an explicit non-default port;
    /// 3. the path with trailing `/` removed (inner `/` kept); query and fragment are ignored;
    /// 4. every character outside `[a-zA-Z0-9/._-]` replaced by `-`;
    /// 5. truncated to 211 characters (the AppIntegrations limit). The 128-character limit for
    ///    security-profile grants is a validation problem, never a silent truncation.
    ///
    /// `https://crm.example.com/agent/` → `crm.example.com/agent`;
    /// `http://localhost:3000` → `localhost-3000`.
    ///
    /// Namespaces are immutable, so a derived one must be stable: the same URL always yields
    /// the same namespace.
    pub fn effective_namespace(&self) -> Result<String, Problem> {
        if let Some(ns) = &self.namespace {
            return Ok(ns.clone());
        }
        let url = url::Url::parse(self.access_url.trim()).map_err(|e| {
            Problem::new(
                "namespace",
                format!(
                    "is not given and cannot be derived because accessUrl is not a valid URL ({e})"
                ),
                "Fix accessUrl, or set `namespace` explicitly (letters, digits and / . _ -).",
            )
        })?;
        let Some(host) = url.host_str() else {
            return Err(Problem::new(
                "namespace",
                "is not given and cannot be derived because accessUrl has no host",
                "Fix accessUrl to an https://host/... URL, or set `namespace` explicitly.",
            ));
        };
        let mut raw = host.to_ascii_lowercase();
        if let Some(port) = url.port() {
            raw.push('-');
            raw.push_str(&port.to_string());
        }
        raw.push_str(url.path().trim_end_matches('/'));
        let ns: String = raw
            .chars()
            .map(|c| if is_namespace_char(c) { c } else { '-' })
            .take(NAMESPACE_MAX)
            .collect();
        Ok(ns)
    }

    /// Hex SHA-256 of the spec's canonical JSON. Two submissions with the same idempotency key
    /// but different hashes are "same key, different body" and must be refused. Empty lists and
    /// absent options serialize the same way, so they hash the same.
    pub fn payload_hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}
