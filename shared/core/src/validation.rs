//! Validation of an [`ApplicationSpec`] before any AWS call is made.
//!
//! The rules mirror the AppIntegrations and Connect service models (lengths, patterns, list
//! sizes), plus the documented product rules the models do not encode (https unless localhost,
//! at least one instance, the 128-character namespace limit of security-profile grants).
//! Validation reports **every** problem at once, each with the JSON path of the field, what is
//! wrong (citing the limit) and what to do about it, so a portal can show them all next to the
//! inputs and a ticket comment can list them in one go.
//!
//! Warnings (unknown permission names, iframe tokens the docs do not list, redundant origins)
//! never block onboarding: the lists grow over time, and the service accepts any name that
//! matches the pattern.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use crate::problem::{Problem, ValidationErrors};
use crate::spec::{
    arn_scope, instance_id, is_namespace_char, profile_arn_instance, profile_id, ApplicationSpec,
    ArnScope, RequestSource,
};

/// Security profiles to grant in one instance, as bare lower-case ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceGrants {
    pub instance_id: String,
    pub profile_ids: Vec<String>,
}

/// A spec that passed validation, with the values the saga needs already normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validated {
    pub spec: ApplicationSpec,
    /// The namespace to create (given, or derived from the access URL).
    pub namespace: String,
    /// Bare lower-case instance ids, in the order given, deduplicated.
    pub instance_ids: Vec<String>,
    /// Security-profile grants per instance, bare ids, in the order given. The live limit of
    /// 10 applications per security profile is checked against Connect by the saga.
    pub profile_grants: Vec<InstanceGrants>,
    /// Non-blocking findings (unknown permission names, undocumented iframe tokens, ...).
    pub warnings: Vec<Problem>,
}

/// Permission names documented in the admin guide (plus `Contact.Variables.View`, used by a
/// public AWS sample). Unknown names are warnings: the list grows with new features.
pub const KNOWN_PERMISSIONS: &[&str] = &[
    "User.Details.View",
    "User.Configuration.View",
    "User.Status.View",
    "User.Status.Edit",
    "Contact.Details.View",
    "Contact.CustomerDetails.View",
    "Contact.Attributes.View",
    "Contact.Details.Edit",
    "Contact.Variables.View",
    "*",
];

/// Iframe `allow` features documented for agent-workspace apps.
pub const DOCUMENTED_IFRAME_ALLOW: &[&str] =
    &["clipboard-read", "clipboard-write", "microphone", "camera"];

/// Iframe `sandbox` tokens documented for agent-workspace apps.
pub const DOCUMENTED_IFRAME_SANDBOX: &[&str] = &[
    "allow-forms",
    "allow-popups",
    "allow-same-origin",
    "allow-scripts",
    "allow-downloads",
    "allow-modal",
    "allow-storage-access-by-user-activation",
    "allow-popups-to-escape-sandbox",
];

/// Tag-key prefix the product uses for its own tags (e.g. `connect-onboarding:saga-id`).
pub const RESERVED_TAG_PREFIX: &str = "connect-onboarding:";

/// Connect's limit on `Application.Namespace` in a security-profile grant.
pub const PROFILE_NAMESPACE_MAX: usize = 128;

const INSTANCE_FORMS: &str = "Use the instance id (a UUID such as \
    12345678-90ab-cdef-1234-567890abcdef, from the instance's ARN in the Connect console) or the \
    instance ARN arn:aws:connect:REGION:ACCOUNT:instance/INSTANCE_ID.";

const PROFILE_FORMS: &str = "Use the security profile id (a UUID) or its ARN \
    arn:aws:connect:REGION:ACCOUNT:instance/INSTANCE_ID/security-profile/PROFILE_ID.";

const URL_SCHEME_FIX: &str = "Use https://, or http://localhost for local testing.";

const EVENT_FIX: &str = "Write the event as source::name with letters, digits and / . _ - on each \
    side of the double colon, optionally ending in * (e.g. crm.example.com::contactSelected).";

impl ApplicationSpec {
    /// Checks every rule and returns all problems at once, or the normalized spec with any
    /// warnings.
    pub fn validate(&self) -> Result<Validated, ValidationErrors> {
        let mut c = Checker::default();
        c.display_name(&self.display_name);
        if let Some(d) = &self.description {
            c.max_len("description", d, 1000);
        }
        let access = c.url("accessUrl", &self.access_url, 1000);
        let access_origin = access.as_ref().map(|u| u.origin().ascii_serialization());
        let namespace = c.namespace(self, access.is_some());
        c.approved_origins(&self.approved_origins, access_origin.as_deref());
        c.permissions(&self.permissions);
        c.events(self);
        c.iframe(self);
        if let Some(t) = self.initialization_timeout_ms {
            if !(1..=600_000).contains(&t) {
                c.error(
                    "initializationTimeoutMs",
                    format!("is {t}; the allowed range is 1..600000 ms (10 minutes)"),
                    "Use a value between 1 and 600000, e.g. 30000 for 30 seconds, or omit it for \
                     the service default.",
                );
            }
        }
        c.tags(&self.tags);
        let instance_ids = c.instances(&self.instances);
        let profile_grants = c.security_profiles(self, &instance_ids);
        if let Some(g) = &self.owner_group {
            c.owner_group(g);
        }
        c.requester(self);

        if c.errors.is_empty() {
            if let Some(namespace) = namespace {
                return Ok(Validated {
                    spec: self.clone(),
                    namespace,
                    instance_ids,
                    profile_grants,
                    warnings: c.warnings,
                });
            }
        }
        if c.errors.is_empty() {
            // Unreachable in practice: a missing namespace always comes with a problem.
            c.error(
                "namespace",
                "could not be determined",
                "Set `namespace` explicitly (letters, digits and / . _ -).",
            );
        }
        Err(ValidationErrors {
            problems: c.errors,
            warnings: c.warnings,
        })
    }
}

/// Collects errors and warnings while the rules run.
#[derive(Default)]
struct Checker {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// The first ARN scope seen (field, scope): every other ARN must agree with it.
    scope: Option<(String, ArnScope)>,
}

/// Length in characters, as the service models count it.
fn len(s: &str) -> usize {
    s.chars().count()
}

/// The distinct characters of `s` that `allowed` rejects, rendered `':', ' '`.
fn bad_chars(s: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    let mut seen: Vec<char> = Vec::new();
    for ch in s.chars() {
        if !allowed(ch) && !seen.contains(&ch) {
            seen.push(ch);
        }
    }
    if seen.is_empty() {
        None
    } else {
        Some(
            seen.iter()
                .map(|ch| format!("{ch:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
    }
}

/// Hosts for which plain http is accepted. The docs only say "localhost"; counting
/// `*.localhost`, `127.0.0.1` and `[::1]` as localhost is our inference (they all resolve to
/// the loopback interface and browsers treat them as secure contexts).
fn is_localhost(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

impl Checker {
    fn error(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.errors.push(Problem::new(field, problem, fix));
    }

    fn warn(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.warnings.push(Problem::new(field, problem, fix));
    }

    /// `max` characters at most; returns false if it was too long.
    fn max_len(&mut self, field: &str, value: &str, max: usize) -> bool {
        let n = len(value);
        if n > max {
            self.error(
                field,
                format!("is {n} characters; the limit is {max}"),
                format!("Shorten it to {max} characters or fewer."),
            );
            return false;
        }
        true
    }

    /// 1..`max` characters; `empty_fix` says what to enter when it is empty.
    fn required_len(&mut self, field: &str, value: &str, max: usize, empty_fix: &str) -> bool {
        if value.is_empty() {
            self.error(
                field,
                "is empty; it must have at least 1 character",
                empty_fix,
            );
            return false;
        }
        self.max_len(field, value, max)
    }

    fn max_items(&mut self, field: &str, n: usize, max: usize, fix: &str) {
        if n > max {
            self.error(
                field,
                format!("has {n} entries; the limit is {max}"),
                format!("Remove {} — {fix}", entries(n - max)),
            );
        }
    }

    fn display_name(&mut self, name: &str) {
        let f = "displayName";
        self.required_len(
            f,
            name,
            255,
            "Enter the name agents will see in the Apps launcher, e.g. \"Customer CRM\".",
        );
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | ' ' | '-');
        if let Some(bad) = bad_chars(name, allowed) {
            self.error(
                f,
                format!(
                    "contains {bad}, which AppIntegrations does not allow in a name (allowed: \
                     letters A-Z a-z, digits, space and / . _ -)"
                ),
                "Remove those characters or replace them, e.g. \"CRM & Co\" → \"CRM and Co\".",
            );
        }
    }

    /// The given or derived namespace; `None` if it cannot be determined.
    fn namespace(&mut self, spec: &ApplicationSpec, access_url_ok: bool) -> Option<String> {
        let f = "namespace";
        let ns = match spec.effective_namespace() {
            Ok(ns) => ns,
            Err(p) => {
                // A broken access URL is already reported; don't report it twice.
                if access_url_ok {
                    self.errors.push(p);
                }
                return None;
            }
        };
        let what = if spec.namespace.is_some() {
            String::new()
        } else {
            format!("(derived from accessUrl: \"{ns}\") ")
        };
        let mut ok = true;
        if ns.is_empty() {
            ok = false;
            self.error(
                f,
                "is empty; it must have at least 1 character",
                "Set a unique namespace such as crm.example.com, or omit it to derive one from \
                 accessUrl.",
            );
        }
        let n = len(&ns);
        if n > crate::spec::NAMESPACE_MAX {
            ok = false;
            self.error(
                f,
                format!(
                    "{what}is {n} characters; the limit is {}",
                    crate::spec::NAMESPACE_MAX
                ),
                "Choose a shorter namespace; it must be unique and can never be changed, so \
                 something like the app's host name works well.",
            );
        } else if !spec.security_profiles.is_empty() && n > PROFILE_NAMESPACE_MAX {
            ok = false;
            self.error(
                f,
                format!(
                    "{what}is {n} characters; security-profile grants accept a namespace of at \
                     most {PROFILE_NAMESPACE_MAX} (Connect's limit)"
                ),
                format!(
                    "Choose a shorter namespace (at most {PROFILE_NAMESPACE_MAX} characters), or \
                     drop securityProfiles and grant access later."
                ),
            );
        }
        if let Some(bad) = bad_chars(&ns, is_namespace_char) {
            ok = false;
            let hint = if ns.contains(':') {
                " A URL origin such as https://crm.example.com must be written as crm.example.com."
            } else {
                ""
            };
            self.error(
                f,
                format!(
                    "{what}contains {bad}, which AppIntegrations does not allow in a namespace \
                     (allowed: letters, digits and / . _ -; no spaces or colons)"
                ),
                format!(
                    "Replace those characters with '-' or '.', or omit namespace to derive one \
                     from accessUrl.{hint}"
                ),
            );
        }
        ok.then_some(ns)
    }

    /// AccessUrl / approved-origin rules; returns the parsed URL when it is acceptable.
    fn url(&mut self, f: &str, raw: &str, max: usize) -> Option<url::Url> {
        let before = self.errors.len();
        if raw.is_empty() {
            self.error(
                f,
                "is empty; it must have at least 1 character",
                "Enter the app's URL, e.g. https://crm.example.com/agent.",
            );
            return None;
        }
        self.max_len(f, raw, max);
        if raw.trim() != raw || raw.chars().any(char::is_control) {
            self.error(
                f,
                "contains leading/trailing whitespace or control characters (e.g. a newline)",
                "Remove the whitespace and line breaks around and inside the URL.",
            );
        }
        // The model's pattern ^\w+://.*$ requires an explicit scheme followed by ://.
        let scheme_ok = raw.split_once("://").is_some_and(|(s, _)| {
            !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        if !scheme_ok {
            self.error(
                f,
                "does not start with a scheme and :// (the service requires the form scheme://...)",
                "Write the full URL including https://, e.g. https://crm.example.com.",
            );
            return None;
        }
        let url = match url::Url::parse(raw.trim()) {
            Ok(u) => u,
            Err(e) => {
                self.error(
                    f,
                    format!("is not a valid absolute URL ({e})"),
                    "Write a full URL such as https://crm.example.com/agent; check the host name \
                     and port.",
                );
                return None;
            }
        };
        if url.host().is_none() {
            self.error(
                f,
                format!("has no host (scheme {}:)", url.scheme()),
                "Use a web address with a host, e.g. https://crm.example.com/agent.",
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.error(
                f,
                "contains credentials (user:password@); every agent's browser would see them",
                "Remove the user:password@ part; let the app sign users in itself.",
            );
        }
        match url.scheme() {
            "https" => {}
            "http" if is_localhost(&url) => {}
            "http" => self.error(
                f,
                "uses http; the agent workspace only embeds https URLs, except for localhost",
                URL_SCHEME_FIX,
            ),
            other => self.error(
                f,
                format!("uses scheme {other}:; only https (or http for localhost) can be embedded"),
                URL_SCHEME_FIX,
            ),
        }
        (self.errors.len() == before).then_some(url)
    }

    fn approved_origins(&mut self, origins: &[String], access_origin: Option<&str>) {
        self.max_items(
            "approvedOrigins",
            origins.len(),
            50,
            "list only origins the app navigates to besides the access URL's own (e.g. its \
             sign-in provider).",
        );
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in origins.iter().enumerate() {
            let f = format!("approvedOrigins[{i}]");
            let Some(url) = self.url(&f, raw, 128) else {
                continue;
            };
            let origin = url.origin().ascii_serialization().to_ascii_lowercase();
            if let Some(first) = seen.get(&origin) {
                self.error(
                    &f,
                    format!("is the same origin ({origin}) as approvedOrigins[{first}]"),
                    "Remove the duplicate entry.",
                );
                continue;
            }
            seen.insert(origin.clone(), i);
            if access_origin.is_some_and(|a| a.eq_ignore_ascii_case(&origin)) {
                self.warn(
                    &f,
                    format!("is the access URL's own origin ({origin}), which is always allowed"),
                    "Remove it; approvedOrigins is only for other origins the app uses.",
                );
            }
        }
    }

    fn permissions(&mut self, perms: &[String]) {
        self.max_items(
            "permissions",
            perms.len(),
            150,
            "grant only the permissions the app uses.",
        );
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '*' | '-');
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, p) in perms.iter().enumerate() {
            let f = format!("permissions[{i}]");
            if !self.required_len(
                &f,
                p,
                255,
                "Remove the empty entry or name a permission, e.g. User.Details.View.",
            ) {
                continue;
            }
            if let Some(bad) = bad_chars(p, allowed) {
                self.error(
                    &f,
                    format!(
                        "contains {bad}, which is not allowed in a permission name (allowed: \
                         letters, digits and / . _ - *)"
                    ),
                    format!("Use a name such as {}.", closest_permission(p)),
                );
                continue;
            }
            if let Some(first) = seen.get(p.as_str()) {
                self.error(
                    &f,
                    format!("duplicates permissions[{first}] ({p})"),
                    "Remove the duplicate entry.",
                );
                continue;
            }
            seen.insert(p, i);
            if p == "*" {
                self.warn(
                    &f,
                    "grants every agent-workspace request and event, including changing the \
                     agent's status and acting on contacts",
                    "List only the permissions the app needs, e.g. User.Details.View and \
                     Contact.Details.View.",
                );
            } else if !KNOWN_PERMISSIONS.contains(&p.as_str()) {
                let near = closest_permission(p);
                self.warn(
                    &f,
                    format!(
                        "\"{p}\" is not a documented permission name; the closest known name \
                         is {near}"
                    ),
                    format!(
                        "If you meant {near}, change it; if this is a permission newer than this \
                         service's list, keep it."
                    ),
                );
            }
        }
    }

    fn events(&mut self, spec: &ApplicationSpec) {
        let subs: Vec<(&str, Option<&str>, Option<&str>)> = spec
            .subscriptions
            .iter()
            .map(|s| (s.event.as_str(), s.description.as_deref(), None))
            .collect();
        let pubs: Vec<(&str, Option<&str>, Option<&str>)> = spec
            .publications
            .iter()
            .map(|p| {
                (
                    p.event.as_str(),
                    p.description.as_deref(),
                    Some(p.schema.as_str()),
                )
            })
            .collect();
        for (list, items) in [("subscriptions", subs), ("publications", pubs)] {
            if items.is_empty() {
                continue;
            }
            self.warn(
                list,
                "is deprecated in AppIntegrations in favour of permissions",
                "Prefer `permissions` (e.g. Contact.Details.View) for agent-workspace events; keep \
                 this only if the app still relies on it.",
            );
            self.max_items(
                list,
                items.len(),
                50,
                "keep only events the app really uses.",
            );
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, (event, description, schema)) in items.into_iter().enumerate() {
                let f = format!("{list}[{i}].event");
                if self.required_len(&f, event, 255, EVENT_FIX) {
                    if !is_event_name(event) {
                        self.error(
                            &f,
                            format!("\"{event}\" is not of the form source::name"),
                            EVENT_FIX,
                        );
                    } else if let Some(first) = seen.get(event) {
                        self.error(
                            &f,
                            format!("duplicates {list}[{first}].event ({event})"),
                            "Remove the duplicate entry or merge the two.",
                        );
                    } else {
                        seen.insert(event, i);
                    }
                }
                if let Some(d) = description {
                    self.max_len(&format!("{list}[{i}].description"), d, 1000);
                }
                if let Some(s) = schema {
                    self.required_len(
                        &format!("{list}[{i}].schema"),
                        s,
                        10240,
                        "Give the event's JSON schema, e.g. {\"type\":\"object\"}.",
                    );
                }
            }
        }
    }

    fn iframe(&mut self, spec: &ApplicationSpec) {
        let Some(iframe) = &spec.iframe else { return };
        for (name, list, documented) in [
            ("allow", &iframe.allow, DOCUMENTED_IFRAME_ALLOW),
            ("sandbox", &iframe.sandbox, DOCUMENTED_IFRAME_SANDBOX),
        ] {
            let lf = format!("iframe.{name}");
            self.max_items(&lf, list.len(), 25, "keep only what the app needs.");
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, v) in list.iter().enumerate() {
                let f = format!("{lf}[{i}]");
                let docs = documented.join(", ");
                if !self.required_len(
                    &f,
                    v,
                    100,
                    &format!("Remove the empty entry or use one of: {docs}."),
                ) {
                    continue;
                }
                if let Some(bad) = bad_chars(v, |c| c.is_ascii_lowercase() || c == '-') {
                    self.error(
                        &f,
                        format!(
                            "contains {bad}; iframe tokens are lower-case letters and '-' only"
                        ),
                        format!(
                            "Write the token in lower case without spaces, e.g. one of: {docs}."
                        ),
                    );
                    continue;
                }
                if let Some(first) = seen.get(v.as_str()) {
                    self.error(
                        &f,
                        format!("duplicates {lf}[{first}] ({v})"),
                        "Remove the duplicate entry.",
                    );
                    continue;
                }
                seen.insert(v, i);
                if !documented.contains(&v.as_str()) {
                    self.warn(
                        &f,
                        format!(
                            "\"{v}\" is not a documented iframe {name} value for the agent \
                             workspace"
                        ),
                        format!("Check the spelling; documented values are: {docs}."),
                    );
                }
            }
        }
        if !iframe.sandbox.iter().any(|s| s == "allow-scripts") {
            self.warn(
                "iframe.sandbox",
                "does not include allow-scripts, so the app cannot run JavaScript or talk to the \
                 workspace (an explicit iframe replaces the default sandbox)",
                "Add allow-scripts (and usually allow-same-origin, allow-forms, allow-popups), or \
                 omit iframe to get the default.",
            );
        }
    }

    fn tags(&mut self, tags: &BTreeMap<String, String>) {
        self.max_items("tags", tags.len(), 200, "merge or drop tags.");
        // Model TagKey: ^(?!aws:)[a-zA-Z+-=._:/]+$ — `+-=` is a range: + , - . / 0-9 : ; < =.
        let allowed = |c: char| {
            c.is_ascii_alphabetic()
                || ('+'..='=').contains(&c)
                || matches!(c, '.' | '_' | ':' | '/')
        };
        for (k, v) in tags {
            let f = format!(
                "tags[{}]",
                serde_json::to_string(k).unwrap_or_else(|_| format!("\"{k}\""))
            );
            if self.required_len(&f, k, 128, "Give the tag a key, e.g. \"team\".") {
                if let Some(bad) = bad_chars(k, allowed) {
                    self.error(
                        &f,
                        format!(
                            "key contains {bad}, which AppIntegrations does not allow in a tag key \
                             (allowed: letters, digits and + , - . / : ; < = _)"
                        ),
                        "Replace those characters, e.g. spaces with '-' or '_'.",
                    );
                }
            }
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("aws:") {
                self.error(
                    &f,
                    "key starts with aws:, which AWS reserves for its own tags",
                    "Rename the key without the aws: prefix.",
                );
            } else if lower.starts_with(RESERVED_TAG_PREFIX) {
                self.error(
                    &f,
                    format!(
                        "key starts with {RESERVED_TAG_PREFIX}, which this service reserves for \
                         its own tags (e.g. {RESERVED_TAG_PREFIX}saga-id)"
                    ),
                    format!("Rename the key without the {RESERVED_TAG_PREFIX} prefix."),
                );
            }
            let n = len(v);
            if n > 256 {
                self.error(
                    &f,
                    format!("value is {n} characters; the limit is 256"),
                    "Shorten the value to 256 characters or fewer.",
                );
            }
        }
    }

    /// Records `id_or_arn`'s ARN scope and reports it if it disagrees with the first one seen.
    fn same_scope(&mut self, f: &str, id_or_arn: &str) {
        let Some(scope) = arn_scope(id_or_arn) else {
            return;
        };
        match &self.scope {
            None => self.scope = Some((f.to_string(), scope)),
            Some((first_field, first)) if *first != scope => {
                let (first_field, first) = (first_field.clone(), first.clone());
                self.error(
                    f,
                    format!(
                        "is in {scope}, but {first_field} is in {first}; an application lives \
                         in one Region and account"
                    ),
                    "Onboard the app separately per Region/account, or fix the ARN.",
                );
            }
            Some(_) => {}
        }
    }

    fn instances(&mut self, instances: &[String]) -> Vec<String> {
        if instances.is_empty() {
            self.error(
                "instances",
                "is empty; an application that is not associated with any Connect instance \
                 cannot be used by agents",
                format!("Add at least one instance. {INSTANCE_FORMS}"),
            );
        }
        self.max_items(
            "instances",
            instances.len(),
            100,
            "split the onboarding into several requests.",
        );
        let mut ids: Vec<String> = Vec::new();
        for (i, raw) in instances.iter().enumerate() {
            let f = format!("instances[{i}]");
            let Some(id) = instance_id(raw) else {
                self.error(
                    &f,
                    format!("\"{raw}\" is not a Connect instance id or instance ARN"),
                    INSTANCE_FORMS,
                );
                continue;
            };
            self.same_scope(&f, raw);
            if let Some(first) = ids.iter().position(|x| *x == id) {
                self.error(
                    &f,
                    format!("is the same instance ({id}) as instances[{first}]"),
                    "Remove the duplicate entry.",
                );
                continue;
            }
            ids.push(id);
        }
        ids
    }

    fn security_profiles(
        &mut self,
        spec: &ApplicationSpec,
        instance_ids: &[String],
    ) -> Vec<InstanceGrants> {
        let mut grants: Vec<InstanceGrants> = Vec::new();
        let mut entry_of: HashMap<String, usize> = HashMap::new();
        for (i, g) in spec.security_profiles.iter().enumerate() {
            let f_inst = format!("securityProfiles[{i}].instance");
            let f_list = format!("securityProfiles[{i}].profiles");
            let inst = instance_id(&g.instance);
            match &inst {
                None => self.error(
                    &f_inst,
                    format!(
                        "\"{}\" is not a Connect instance id or instance ARN",
                        g.instance
                    ),
                    INSTANCE_FORMS,
                ),
                Some(id) => {
                    self.same_scope(&f_inst, &g.instance);
                    if let Some(first) = entry_of.get(id) {
                        self.error(
                            &f_inst,
                            format!(
                                "is the same instance ({id}) as securityProfiles[{first}].instance"
                            ),
                            "Merge the two entries' profiles into one entry.",
                        );
                    } else {
                        entry_of.insert(id.clone(), i);
                        if !instance_ids.contains(id) {
                            self.error(
                                &f_inst,
                                format!(
                                    "instance {id} is not in instances; profiles can only be \
                                     granted where the app is associated"
                                ),
                                format!("Add {id} to instances, or remove this entry."),
                            );
                        }
                    }
                }
            }
            if g.profiles.is_empty() {
                self.error(
                    &f_list,
                    "is empty; the entry grants nothing",
                    format!(
                        "Add the security profile ids to grant in this instance, or remove the \
                         entry. {PROFILE_FORMS}"
                    ),
                );
            }
            self.max_items(
                &f_list,
                g.profiles.len(),
                50,
                "grant access to fewer profiles per request (the app can be added to more later).",
            );
            let mut ids: Vec<String> = Vec::new();
            for (k, raw) in g.profiles.iter().enumerate() {
                let f = format!("{f_list}[{k}]");
                let Some(pid) = profile_id(raw) else {
                    self.error(
                        &f,
                        format!("\"{raw}\" is not a security profile id or ARN"),
                        PROFILE_FORMS,
                    );
                    continue;
                };
                self.same_scope(&f, raw);
                if let (Some(arn_inst), Some(entry_inst)) = (profile_arn_instance(raw), &inst) {
                    if arn_inst != *entry_inst {
                        self.error(
                            &f,
                            format!(
                                "belongs to instance {arn_inst}, but this entry is for instance \
                                 {entry_inst}"
                            ),
                            format!(
                                "Move the profile to an entry whose instance is {arn_inst}, or \
                                 use a profile of {entry_inst}."
                            ),
                        );
                    }
                }
                if let Some(first) = ids.iter().position(|x| *x == pid) {
                    self.error(
                        &f,
                        format!("is the same profile ({pid}) as {f_list}[{first}]"),
                        "Remove the duplicate entry.",
                    );
                    continue;
                }
                ids.push(pid);
            }
            if let Some(id) = inst {
                if entry_of.get(&id) == Some(&i) {
                    grants.push(InstanceGrants {
                        instance_id: id,
                        profile_ids: ids,
                    });
                }
            }
        }
        grants
    }

    fn requester(&mut self, spec: &ApplicationSpec) {
        let r = &spec.requester;
        let f = "requester.principal";
        if r.principal.trim().is_empty() {
            self.error(
                f,
                "is blank; every request must say who asked for it",
                "Set principal to the submitting user's login or the caller's IAM ARN.",
            );
        } else {
            self.max_len(f, &r.principal, 256);
        }
        let f = "requester.ticketId";
        match &r.ticket_id {
            None if r.source == RequestSource::Ticket => self.error(
                f,
                "is missing; requests with source TICKET must name their change ticket",
                "Set ticketId to the approved ticket's id (e.g. CHG0012345), or use source \
                 PORTAL/CLI.",
            ),
            None => {}
            Some(t) => self.ticket_id(f, t),
        }
    }

    fn ticket_id(&mut self, f: &str, t: &str) {
        let empty_fix = "Set ticketId to the ticket's id, e.g. CHG0012345, or omit it.";
        if !self.required_len(f, t, 128, empty_fix) {
            return;
        }
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-');
        if let Some(bad) = bad_chars(t, allowed) {
            self.error(
                f,
                format!("contains {bad} (allowed: letters, digits and . _ : / -)"),
                "Use the ticket's plain id, e.g. CHG0012345 or OPS-1234.",
            );
        }
    }

    fn owner_group(&mut self, g: &str) {
        let f = "ownerGroup";
        if !self.required_len(
            f,
            g,
            256,
            "Name the owning team's group as the identity provider sends it, or omit ownerGroup.",
        ) {
            return;
        }
        // Group names come from a groups claim split on commas and spaces.
        if let Some(bad) = bad_chars(g, |c| c.is_ascii_graphic() && c != ',') {
            self.error(
                f,
                format!("contains {bad}; a group name has no spaces, commas or control characters"),
                "Use the group's name exactly as the identity provider's groups claim lists it, \
                 e.g. crm-team.",
            );
        }
    }
}

/// `^[a-zA-Z0-9/._-]+::[a-zA-Z0-9/._-]+(?:\*)?$` without a regex.
fn is_event_name(s: &str) -> bool {
    let body = s.strip_suffix('*').unwrap_or(s);
    let Some((source, name)) = body.split_once("::") else {
        return false;
    };
    let part_ok = |p: &str| !p.is_empty() && p.chars().all(is_namespace_char);
    part_ok(source) && part_ok(name)
}

/// The known permission name closest to `p` (case-insensitive edit distance).
pub fn closest_permission(p: &str) -> &'static str {
    let lower = p.to_ascii_lowercase();
    KNOWN_PERMISSIONS
        .iter()
        .filter(|k| **k != "*")
        .min_by_key(|k| strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()))
        .copied()
        .unwrap_or("User.Details.View")
}
