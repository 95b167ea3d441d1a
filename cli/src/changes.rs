//! What a change or drift-fix saga did, in words. Those sagas run every step on every instance
//! the application has, and most nodes find nothing to do (`{"changed": false}`): a pause of
//! one instance is fifteen nodes of which three act. People are shown the three.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use onboard_core::record::NodeState;
use onboard_core::service::SagaView;
use serde_json::Value;

/// Saga kinds whose per-instance nodes are mostly no-ops.
pub fn concise(kind: &str) -> bool {
    matches!(kind, "change" | "fix")
}

/// A node that finished and reported it had nothing to change.
pub fn no_op(output: Option<&Value>) -> bool {
    output
        .and_then(|o| o.get("changed"))
        .and_then(Value::as_bool)
        == Some(false)
}

/// What a step that changed something did.
fn phrase(step: &str) -> &str {
    match step {
        "detach_profiles" => "revoked its ACCESS grant in the security profiles",
        "detach_policy" => "removed its statement from the service-linked role's policy",
        "detach_association" => "removed the association with the instance",
        "update_application" => "updated the application's fields",
        "attach_association" => "associated the application with the instance",
        "attach_policy" => "added its statement to the service-linked role's policy",
        "attach_profiles" => "granted it ACCESS in the security profiles",
        "set_frame_settings" => {
            "set the iframe configuration / initialization timeout (AppIntegrations keeps them)"
        }
        other => other,
    }
}

/// The "Changes" section of a finished change saga: one line per node that acted, with
/// aliases, and how many found nothing to do. Empty for other kinds.
pub fn section(view: &SagaView, aliases: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    if !concise(&view.kind) {
        return s;
    }
    let acted: Vec<_> = view
        .steps
        .iter()
        .filter(|st| st.state == NodeState::Succeeded && !no_op(st.output.as_ref()))
        .filter(|st| !matches!(st.step.as_str(), "check" | "commit"))
        .collect();
    let idle = view
        .steps
        .iter()
        .filter(|st| st.state == NodeState::Succeeded && no_op(st.output.as_ref()))
        .count();
    let _ = writeln!(s, "\nChanges");
    if acted.is_empty() {
        let _ = writeln!(s, "  none: AWS already matched the requested state");
    }
    for st in &acted {
        let on = st
            .instance
            .as_deref()
            .map(|i| aliases.get(i).map_or(i, String::as_str));
        match on {
            Some(name) => {
                let _ = writeln!(s, "  {name}: {}", phrase(&st.step));
            }
            None => {
                let _ = writeln!(s, "  {}", phrase(&st.step));
            }
        }
    }
    if idle > 0 {
        let _ = writeln!(
            s,
            "  ({idle} other step(s) found nothing to do; `onboard status {} --log` lists every step)",
            view.id
        );
    }
    s
}
