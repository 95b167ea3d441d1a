//! What `infra/template.yaml` grants: each Lambda function's role, statements and the platform
//! features (event sources, tracing, logging) that need permissions of their own.
//!
//! CloudFormation's short-form intrinsics (`!Sub`, `!GetAtt`, `!If`, …) arrive as tagged YAML
//! values; an `!If` contributes both branches (a grant that exists in any configuration counts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// Why the template could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("{0}")]
    Shape(String),
}

/// One Allow statement of a function's role.
#[derive(Debug, Clone)]
pub struct Statement {
    pub policy: String,
    pub sid: Option<String>,
    pub actions: Vec<String>,
    /// The resources as written (intrinsics rendered as text).
    pub resources: Vec<String>,
}

/// A function of the template with what its role grants.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// `CodeUri` resolved against the template's folder.
    pub code_dir: PathBuf,
    pub role: String,
    pub statements: Vec<Statement>,
    pub managed_policies: Vec<String>,
    /// Event source types (`SQS`, `Schedule`, …).
    pub event_types: Vec<String>,
    pub tracing_active: bool,
}

/// The parsed template.
pub struct Template {
    pub path: PathBuf,
    pub root: Value,
}

fn tag_name(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        _ => None,
    }
}

/// Every value `v` can take: `!If [c, a, b]` → both branches; `AWS::NoValue` dropped.
fn branches(v: &Value) -> Vec<&Value> {
    if let Some((tag, inner)) = tag_name(v) {
        if tag == "If" {
            if let Value::Sequence(seq) = inner {
                return seq.iter().skip(1).flat_map(branches).collect();
            }
        }
        if tag == "Ref" && inner.as_str() == Some("AWS::NoValue") {
            return Vec::new();
        }
    }
    if let Value::Mapping(m) = v {
        if let Some(Value::Sequence(seq)) = m.get("Fn::If") {
            return seq.iter().skip(1).flat_map(branches).collect();
        }
        if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
            return Vec::new();
        }
    }
    vec![v]
}

/// Strings of a string-or-list value, through `!If`.
fn strings(v: &Value) -> Vec<String> {
    branches(v)
        .into_iter()
        .flat_map(|b| match b {
            Value::String(s) => vec![s.clone()],
            Value::Sequence(seq) => seq.iter().flat_map(strings).collect(),
            other => vec![render(other)],
        })
        .collect()
}

/// An intrinsic as compact text, e.g. `!GetAtt SagaTable.Arn`.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => format!("{} {}", t.tag, render(&t.value)),
        Value::Sequence(seq) => format!(
            "[{}]",
            seq.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().replace('\n', " "))
            .unwrap_or_default(),
    }
}

/// The logical id an `!GetAtt X.Arn` / `!Ref X` names.
fn referenced_id(v: &Value) -> Option<String> {
    let (tag, inner) = tag_name(v)?;
    match (tag.as_str(), inner) {
        ("GetAtt", Value::String(s)) => s.split('.').next().map(str::to_string),
        ("GetAtt", Value::Sequence(seq)) => seq.first().and_then(Value::as_str).map(str::to_string),
        ("Ref", Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let root = serde_norway::from_str(&text).map_err(|source| TemplateError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Template {
            path: path.to_path_buf(),
            root,
        })
    }

    pub fn resources(&self) -> BTreeMap<String, &Value> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn global_function(&self, key: &str) -> Option<&Value> {
        self.root.get("Globals")?.get("Function")?.get(key)
    }

    /// The statements of an `AWS::IAM::Role`'s inline policies.
    pub fn role_statements(
        &self,
        role_id: &str,
    ) -> Result<(Vec<Statement>, Vec<String>), TemplateError> {
        let resources = self.resources();
        let role = resources
            .get(role_id)
            .ok_or_else(|| TemplateError::Shape(format!("role {role_id} is not a resource")))?;
        if role.get("Type").and_then(Value::as_str) != Some("AWS::IAM::Role") {
            return Err(TemplateError::Shape(format!(
                "{role_id} is not an AWS::IAM::Role"
            )));
        }
        let props = role.get("Properties");
        let managed = props
            .and_then(|p| p.get("ManagedPolicyArns"))
            .map(strings)
            .unwrap_or_default();
        let mut out = Vec::new();
        let policies = props
            .and_then(|p| p.get("Policies"))
            .map(branches)
            .unwrap_or_default();
        for policies in policies {
            let Value::Sequence(list) = policies else {
                continue;
            };
            for policy in list.iter().flat_map(branches) {
                let name = policy.get("PolicyName").map(render).unwrap_or_default();
                let statements = policy
                    .get("PolicyDocument")
                    .and_then(|d| d.get("Statement"))
                    .map(branches)
                    .unwrap_or_default();
                for st_list in statements {
                    let items: Vec<&Value> = match st_list {
                        Value::Sequence(s) => s.iter().flat_map(branches).collect(),
                        other => vec![other],
                    };
                    for st in items {
                        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
                            continue;
                        }
                        out.push(Statement {
                            policy: name.clone(),
                            sid: st.get("Sid").and_then(Value::as_str).map(str::to_string),
                            actions: st.get("Action").map(strings).unwrap_or_default(),
                            resources: st.get("Resource").map(strings).unwrap_or_default(),
                        });
                    }
                }
            }
        }
        Ok((out, managed))
    }

    /// Every `AWS::Serverless::Function` with its role's grants.
    pub fn functions(&self) -> Result<Vec<Function>, TemplateError> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for (id, res) in self.resources() {
            if res.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let props = res
                .get("Properties")
                .ok_or_else(|| TemplateError::Shape(format!("{id} has no Properties")))?;
            let code_uri = props
                .get("CodeUri")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Shape(format!("{id} has no string CodeUri")))?;
            let role = props.get("Role").and_then(referenced_id).ok_or_else(|| {
                TemplateError::Shape(format!(
                    "{id} must name its own role (Role: !GetAtt XRole.Arn) so its grants \
                         are explicit"
                ))
            })?;
            let (statements, managed_policies) = self.role_statements(&role)?;
            let event_types = props
                .get("Events")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.values()
                        .filter_map(|e| e.get("Type").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let tracing = props
                .get("Tracing")
                .or_else(|| self.global_function("Tracing"))
                .and_then(Value::as_str);
            out.push(Function {
                logical_id: id,
                code_dir: base.join(code_uri),
                role,
                statements,
                managed_policies,
                event_types,
                tracing_active: tracing == Some("Active"),
            });
        }
        Ok(out)
    }
}

/// Actions the Lambda platform needs for features the template turns on, not the code: writing
/// logs, X-Ray segments, and polling an SQS event source.
pub fn platform_actions(f: &Function) -> Vec<String> {
    let mut out = vec![
        "logs:CreateLogStream".to_string(),
        "logs:PutLogEvents".to_string(),
    ];
    if f.tracing_active {
        out.push("xray:PutTraceSegments".into());
        out.push("xray:PutTelemetryRecords".into());
    }
    if f.event_types.iter().any(|t| t == "SQS") {
        out.push("sqs:ReceiveMessage".into());
        out.push("sqs:DeleteMessage".into());
        out.push("sqs:GetQueueAttributes".into());
    }
    out
}
