//! The IAM actions a Lambda function's code can call, derived from the Rust source.
//!
//! Nothing here is a hand-kept list of actions: the analysis reads the workspace with `syn` and
//!
//! 1. finds every **SDK operation call**: a method call on a value whose type is an
//!    `aws_sdk_<service>::Client` (a struct field such as `self.client`, a parameter
//!    `client: &Client`, or a local bound to one), e.g. `self.client.get_item()` →
//!    `dynamodb:GetItem`;
//! 2. groups those calls into **units**: an adapter type (every call in every `impl` block of a
//!    struct that holds a client, since a built adapter can be asked for any of its methods) or a
//!    free function;
//! 3. walks from the function's `main.rs` through the paths it names (`clients::saga_store`,
//!    `onboard_aws::onboard_ports`, `DynamoSagaStore::new`, …) across the crates the function
//!    depends on, so only the adapters its `main` actually builds count (the DynamoDB
//!    `create_table` helper used by tests and the CLI does not).
//!
//! Operation names become IAM actions by the SDK's naming rule (`snake_case` → `PascalCase`,
//! compared case-insensitively like IAM does) plus [`dependent_actions`], the few operations AWS
//! authorizes with other or additional actions (from the Service Authorization Reference).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Why the analysis could not finish.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "the code calls {service_crate}::{operation} but {service_crate} has no IAM prefix in \
         code_actions::iam_prefix; add the service's prefix there"
    )]
    UnknownService {
        service_crate: String,
        operation: String,
    },
}

/// An IAM action such as `dynamodb:GetItem`, ordered and compared case-insensitively (IAM
/// action names are case-insensitive).
#[derive(Debug, Clone)]
pub struct Action(pub String);

impl Action {
    fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}
impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Action {}
impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Action {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One SDK call site: `aws_sdk_<service>` crate, operation method, where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SdkCall {
    pub service_crate: String,
    pub operation: String,
    /// `file:unit` where the call was found.
    pub site: String,
}

/// The IAM prefix of an `aws_sdk_*` crate.
pub fn iam_prefix(service_crate: &str) -> Option<&'static str> {
    Some(match service_crate {
        "aws_sdk_appintegrations" => "app-integrations",
        "aws_sdk_connect" => "connect",
        "aws_sdk_iam" => "iam",
        "aws_sdk_dynamodb" => "dynamodb",
        "aws_sdk_sqs" => "sqs",
        "aws_sdk_secretsmanager" => "secretsmanager",
        "aws_sdk_ssm" => "ssm",
        "aws_sdk_sfn" => "states",
        "aws_sdk_sts" => "sts",
        "aws_sdk_kms" => "kms",
        "aws_sdk_cloudwatch" => "cloudwatch",
        "aws_sdk_lambda" => "lambda",
        _ => return None,
    })
}

/// `get_role_policy` → `GetRolePolicy`.
pub fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Operations that AWS authorizes with other or additional actions than their own name
/// (Service Authorization Reference, and the console page this service replaces). `facts`
/// says what else the calling unit does (e.g. which transaction item kinds it builds).
pub fn dependent_actions(prefix: &str, op: &str, facts: &UnitFacts) -> Option<Vec<String>> {
    let v = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect());
    match (prefix, op) {
        // Tags on create need TagResource ("tag on create"); the adapter always tags.
        ("app-integrations", "CreateApplication") => v(&[
            "app-integrations:CreateApplication",
            "app-integrations:TagResource",
        ]),
        // Connect creates/deletes the AppIntegrations side of the association with the
        // caller's rights (the source page's "association errors" for older applications).
        ("connect", "CreateIntegrationAssociation") => v(&[
            "connect:CreateIntegrationAssociation",
            "app-integrations:CreateApplicationAssociation",
        ]),
        ("connect", "DeleteIntegrationAssociation") => v(&[
            "connect:DeleteIntegrationAssociation",
            "app-integrations:DeleteApplicationAssociation",
        ]),
        // Transactions are authorized per item kind; there is no TransactWriteItems action.
        ("dynamodb", "TransactWriteItems") => Some(
            facts
                .transact_kinds
                .iter()
                .map(|k| format!("dynamodb:{k}"))
                .collect(),
        ),
        ("dynamodb", "TransactGetItems") | ("dynamodb", "BatchGetItem") => v(&["dynamodb:GetItem"]),
        ("dynamodb", "BatchWriteItem") => v(&["dynamodb:PutItem", "dynamodb:DeleteItem"]),
        _ => None,
    }
}

/// What else a unit does that decides its actions.
#[derive(Debug, Clone, Default)]
pub struct UnitFacts {
    /// DynamoDB transaction item kinds it builds: `PutItem`, `DeleteItem`, `UpdateItem`,
    /// `ConditionCheckItem`.
    pub transact_kinds: BTreeSet<String>,
}

/// Methods of an SDK `Client` that are not service operations.
const NOT_OPERATIONS: &[&str] = &["clone", "config", "with_config", "from_conf", "new"];

/// A workspace crate: its Rust identifier, source files and path dependencies.
#[derive(Debug, Clone)]
struct CrateInfo {
    ident: String,
    dir: PathBuf,
    deps: Vec<String>,
}

#[derive(Default)]
struct FileIndex {
    path: PathBuf,
    crate_ident: String,
    /// `Name` → full path (`aws_sdk_dynamodb::Client`), from `use` items.
    uses: HashMap<String, String>,
    /// Struct name → field name → field type (as written, resolved later).
    structs: HashMap<String, Vec<(String, syn::Type)>>,
    free_fns: Vec<syn::ItemFn>,
    /// Self type name → methods.
    impls: Vec<(String, Vec<syn::ImplItemFn>)>,
    /// DynamoDB transaction item builders named in this file.
    transact_kinds: BTreeSet<String>,
}

/// The whole analysis over a workspace.
pub struct Analysis {
    crates: BTreeMap<String, CrateInfo>,
    files: Vec<FileIndex>,
}

fn read(path: &Path) -> Result<String, AnalysisError> {
    std::fs::read_to_string(path).map_err(|source| AnalysisError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn manifest(path: &Path) -> Result<toml::Table, AnalysisError> {
    read(path)?
        .parse::<toml::Table>()
        .map_err(|e| AnalysisError::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), AnalysisError> {
    let entries = std::fs::read_dir(dir).map_err(|source| AnalysisError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            rs_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Flatten a `use` tree into `Name → full::path` pairs (globs are ignored).
fn collect_uses(prefix: &str, tree: &syn::UseTree, out: &mut HashMap<String, String>) {
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}::{b}")
        }
    };
    match tree {
        syn::UseTree::Path(p) => collect_uses(&join(prefix, &p.ident.to_string()), &p.tree, out),
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.rsplit("::").next() {
                    out.insert(last.to_string(), prefix.to_string());
                }
            } else {
                out.insert(name.clone(), join(prefix, &name));
            }
        }
        syn::UseTree::Rename(r) => {
            out.insert(r.rename.to_string(), join(prefix, &r.ident.to_string()));
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                collect_uses(prefix, t, out);
            }
        }
        syn::UseTree::Glob(_) => {}
    }
}

fn path_string(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The path a type names, through references, `Arc<…>`-like wrappers excluded.
fn type_path(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Reference(r) => type_path(&r.elem),
        syn::Type::Path(p) => Some(path_string(&p.path)),
        syn::Type::Paren(p) => type_path(&p.elem),
        _ => None,
    }
}

impl FileIndex {
    /// `Client` or `aws_sdk_x::Client` → `Some("aws_sdk_x")` when it names an SDK client.
    fn sdk_client_crate(&self, written: &str) -> Option<String> {
        let mut segments: Vec<&str> = written.split("::").collect();
        if let Some(first) = segments.first().copied() {
            if let Some(full) = self.uses.get(first) {
                let mut expanded: Vec<&str> = full.split("::").collect();
                expanded.extend(segments.drain(1..));
                segments = expanded;
            }
        }
        match segments.as_slice() {
            [krate, "Client"] if krate.starts_with("aws_sdk_") => Some(krate.to_string()),
            [krate, "client", "Client"] if krate.starts_with("aws_sdk_") => Some(krate.to_string()),
            _ => None,
        }
    }

    /// SDK client crates imported or named anywhere in this file.
    fn client_crates(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .uses
            .keys()
            .filter_map(|k| self.sdk_client_crate(k))
            .collect();
        for fields in self.structs.values() {
            for (_, ty) in fields {
                if let Some(c) = type_path(ty).and_then(|p| self.sdk_client_crate(&p)) {
                    out.insert(c);
                }
            }
        }
        out
    }
}

/// Finds SDK operation calls in one function body.
struct CallFinder<'a> {
    file: &'a FileIndex,
    /// Variable or field name → SDK crate.
    bindings: HashMap<String, String>,
    /// Fields of `Self` → SDK crate.
    self_fields: HashMap<String, String>,
    /// The only SDK client this file uses, for receivers whose type the finder cannot see.
    sole_client: Option<String>,
    calls: Vec<(String, String)>,
}

impl CallFinder<'_> {
    fn receiver_crate(&self, receiver: &syn::Expr) -> Option<String> {
        match receiver {
            syn::Expr::Field(f) => {
                let name = match &f.member {
                    syn::Member::Named(i) => i.to_string(),
                    syn::Member::Unnamed(_) => return None,
                };
                let on_self = matches!(&*f.base, syn::Expr::Path(p) if p.path.is_ident("self"));
                if on_self {
                    if let Some(c) = self.self_fields.get(&name) {
                        return Some(c.clone());
                    }
                }
                name.contains("client")
                    .then(|| self.sole_client.clone())
                    .flatten()
            }
            syn::Expr::Path(p) => {
                let name = p.path.get_ident()?.to_string();
                if let Some(c) = self.bindings.get(&name) {
                    return Some(c.clone());
                }
                name.contains("client")
                    .then(|| self.sole_client.clone())
                    .flatten()
            }
            syn::Expr::Reference(r) => self.receiver_crate(&r.expr),
            syn::Expr::Paren(p) => self.receiver_crate(&p.expr),
            _ => None,
        }
    }
}

impl<'ast> Visit<'ast> for CallFinder<'_> {
    fn visit_local(&mut self, local: &'ast syn::Local) {
        // `let c: Client = …`, `let c = aws_sdk_x::Client::new(…)`, `let c = &self.client`.
        if let syn::Pat::Type(pt) = &local.pat {
            if let (syn::Pat::Ident(id), Some(p)) = (&*pt.pat, type_path(&pt.ty)) {
                if let Some(c) = self.file.sdk_client_crate(&p) {
                    self.bindings.insert(id.ident.to_string(), c);
                }
            }
        }
        if let (syn::Pat::Ident(id), Some(init)) = (&local.pat, &local.init) {
            let from_expr = match &*init.expr {
                syn::Expr::Call(call) => match &*call.func {
                    syn::Expr::Path(p) => {
                        let s = path_string(&p.path);
                        s.strip_suffix("::new")
                            .or_else(|| s.strip_suffix("::from_conf"))
                            .and_then(|t| self.file.sdk_client_crate(t))
                    }
                    _ => None,
                },
                other => self.receiver_crate(other),
            };
            if let Some(c) = from_expr {
                self.bindings.insert(id.ident.to_string(), c);
            }
        }
        syn::visit::visit_local(self, local);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = call.method.to_string();
        if !NOT_OPERATIONS.contains(&method.as_str()) && !method.starts_with("wait_until") {
            if let Some(krate) = self.receiver_crate(&call.receiver) {
                self.calls.push((krate, method));
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// Paths a body names (calls, types, struct literals), for reachability.
#[derive(Default)]
struct PathCollector {
    paths: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.paths.insert(path_string(path));
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let mut calls = BTreeSet::new();
        scan_tokens(mac.tokens.clone(), &mut calls, &mut self.paths);
        syn::visit::visit_macro(self, mac);
    }
}

/// A reachability node: a free function (file index, name), a type that is built or named
/// (crate, name), or one method of a type (crate, type, method).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Fn(usize, String),
    Type(String, String),
    Method(String, String, String),
}

/// Method calls `.name(args…)` in a body, as (name, argument count): a method of a reached
/// type runs only if something reached calls a method of that name and arity (dynamic dispatch
/// through `Arc<dyn Port>` included), so an adapter counts only the operations its callers use.
#[derive(Default)]
struct MethodCalls {
    calls: BTreeSet<(String, usize)>,
}

impl<'ast> Visit<'ast> for MethodCalls {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.calls
            .insert((call.method.to_string(), call.args.len()));
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let mut paths = BTreeSet::new();
        scan_tokens(mac.tokens.clone(), &mut self.calls, &mut paths);
    }
}

/// Macro bodies are token streams syn does not parse as code: find `.name(args)` method calls
/// and `a::b` paths in them by their tokens.
fn scan_tokens(
    tokens: proc_macro2::TokenStream,
    calls: &mut BTreeSet<(String, usize)>,
    paths: &mut BTreeSet<String>,
) {
    use proc_macro2::{Delimiter, TokenTree};
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Group(g) => scan_tokens(g.stream(), calls, paths),
            TokenTree::Punct(p) if p.as_char() == '.' => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(args))) =
                    (tts.get(i + 1), tts.get(i + 2))
                {
                    if args.delimiter() == Delimiter::Parenthesis {
                        let mut argc = 0;
                        let mut pending = false;
                        for t in args.stream() {
                            match t {
                                TokenTree::Punct(c) if c.as_char() == ',' => {
                                    argc += usize::from(pending);
                                    pending = false;
                                }
                                _ => pending = true,
                            }
                        }
                        argc += usize::from(pending);
                        calls.insert((name.to_string(), argc));
                    }
                }
            }
            TokenTree::Ident(first) => {
                // `a::b::c`: idents joined by `::` (two `:` puncts).
                let mut segs = vec![first.to_string()];
                let mut j = i + 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(next)),
                ) = (tts.get(j), tts.get(j + 1), tts.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    segs.push(next.to_string());
                    j += 3;
                }
                let called = matches!(tts.get(j), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                let after_dot =
                    i > 0 && matches!(&tts[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                let type_like = segs[0].starts_with(|c: char| c.is_ascii_uppercase());
                if segs.len() > 1 || (!after_dot && (called || type_like)) {
                    paths.insert(segs.join("::"));
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Parameters of a method besides its receiver.
fn arity(sig: &syn::Signature) -> usize {
    sig.inputs
        .iter()
        .filter(|i| matches!(i, syn::FnArg::Typed(_)))
        .count()
}

impl Analysis {
    /// Reads every crate of the workspace rooted at `root` (its `Cargo.toml` members).
    pub fn load(root: &Path) -> Result<Analysis, AnalysisError> {
        let root_manifest = manifest(&root.join("Cargo.toml"))?;
        let members: Vec<String> = root_manifest
            .get("workspace")
            .and_then(|w| w.get("members"))
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut crates = BTreeMap::new();
        for member in members {
            let dir = root.join(&member);
            let m = manifest(&dir.join("Cargo.toml"))?;
            let Some(name) = m
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let ident = name.replace('-', "_");
            let deps = m
                .get("dependencies")
                .and_then(|d| d.as_table())
                .map(|t| {
                    t.iter()
                        .filter(|(_, v)| v.get("path").is_some())
                        .map(|(k, _)| k.replace('-', "_"))
                        .collect()
                })
                .unwrap_or_default();
            crates.insert(
                ident.clone(),
                CrateInfo {
                    ident,
                    dir: dir.clone(),
                    deps,
                },
            );
        }
        let mut files = Vec::new();
        for info in crates.values() {
            let mut paths = Vec::new();
            rs_files(&info.dir.join("src"), &mut paths)?;
            paths.sort();
            for path in paths {
                files.push(index_file(&path, &info.ident)?);
            }
        }
        Ok(Analysis { crates, files })
    }

    /// The crates `krate` can reach through path dependencies, itself included.
    fn dep_closure(&self, krate: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.to_string()];
        while let Some(k) = todo.pop() {
            if !seen.insert(k.clone()) {
                continue;
            }
            if let Some(info) = self.crates.get(&k) {
                todo.extend(info.deps.iter().cloned());
            }
        }
        seen
    }

    /// The crate whose directory is `dir` (e.g. `functions/worker`).
    pub fn crate_at(&self, dir: &Path) -> Option<String> {
        let want = dir.canonicalize().ok()?;
        self.crates
            .values()
            .find(|c| c.dir.canonicalize().ok().as_deref() == Some(want.as_path()))
            .map(|c| c.ident.clone())
    }

    /// Every SDK call the binary whose entry point is `main_rs` (in crate `krate`) can make:
    /// from every item of `main.rs`, through the free functions and types the reached bodies
    /// name, and the methods of reached types that reached bodies call (by name and arity).
    pub fn reachable_calls(
        &self,
        krate: &str,
        main_rs: &Path,
    ) -> Result<BTreeSet<SdkCall>, AnalysisError> {
        let closure = self.dep_closure(krate);
        let want = main_rs
            .canonicalize()
            .unwrap_or_else(|_| main_rs.to_path_buf());
        let main_idx = self
            .files
            .iter()
            .position(|f| f.path.canonicalize().ok().as_ref() == Some(&want))
            .ok_or_else(|| AnalysisError::Manifest {
                path: main_rs.to_path_buf(),
                message: "not a source file of the workspace".into(),
            })?;
        let mut seen: BTreeSet<Node> = BTreeSet::new();
        let mut todo: Vec<Node> = self.files[main_idx]
            .free_fns
            .iter()
            .map(|f| Node::Fn(main_idx, f.sig.ident.to_string()))
            .collect();
        let mut types: BTreeSet<(String, String)> = BTreeSet::new();
        let mut parents: BTreeMap<Node, Node> = BTreeMap::new();
        let mut called: BTreeSet<(String, usize)> = BTreeSet::new();
        let mut calls = BTreeSet::new();
        loop {
            while let Some(node) = todo.pop() {
                if !seen.insert(node.clone()) {
                    continue;
                }
                match &node {
                    Node::Fn(fi, name) => {
                        let file = &self.files[*fi];
                        for f in file
                            .free_fns
                            .iter()
                            .filter(|f| f.sig.ident == name.as_str())
                        {
                            self.calls_in(file, None, &f.sig, &f.block, name, &mut calls);
                            for r in self.references(*fi, None, &f.block, &f.sig, &closure) {
                                parents.entry(r.clone()).or_insert_with(|| node.clone());
                                todo.push(r);
                            }
                            let mut mc = MethodCalls::default();
                            mc.visit_block(&f.block);
                            called.extend(mc.calls);
                        }
                    }
                    Node::Type(krate, ty) => {
                        types.insert((krate.clone(), ty.clone()));
                    }
                    Node::Method(krate, ty, method) => {
                        types.insert((krate.clone(), ty.clone()));
                        for (fi, file) in self.files.iter().enumerate() {
                            if &file.crate_ident != krate {
                                continue;
                            }
                            for (self_ty, methods) in file.impls.iter().filter(|(t, _)| t == ty) {
                                for m in methods.iter().filter(|m| m.sig.ident == method.as_str()) {
                                    let unit = format!("{self_ty}::{method}");
                                    self.calls_in(
                                        file,
                                        Some(self_ty),
                                        &m.sig,
                                        &m.block,
                                        &unit,
                                        &mut calls,
                                    );
                                    for r in self.references(
                                        fi,
                                        Some(self_ty),
                                        &m.block,
                                        &m.sig,
                                        &closure,
                                    ) {
                                        parents.entry(r.clone()).or_insert_with(|| node.clone());
                                        todo.push(r);
                                    }
                                    let mut mc = MethodCalls::default();
                                    mc.visit_block(&m.block);
                                    called.extend(mc.calls);
                                }
                            }
                        }
                    }
                }
            }
            // Methods of reached types that something reached calls.
            for (krate, ty) in &types {
                for file in self.files.iter().filter(|f| &f.crate_ident == krate) {
                    for (_, methods) in file.impls.iter().filter(|(t, _)| t == ty) {
                        for m in methods {
                            let key = (m.sig.ident.to_string(), arity(&m.sig));
                            let node = Node::Method(krate.clone(), ty.clone(), key.0.clone());
                            if called.contains(&key) && !seen.contains(&node) {
                                todo.push(node);
                            }
                        }
                    }
                }
            }
            if todo.is_empty() {
                if std::env::var_os("ONBOARD_INFRA_TRACE").is_some() {
                    for n in &seen {
                        let mut chain = vec![format!("{n:?}")];
                        let mut at = n;
                        while let Some(p) = parents.get(at) {
                            chain.push(format!("{p:?}"));
                            at = p;
                            if chain.len() > 30 {
                                break;
                            }
                        }
                        eprintln!("reached {}", chain.join(" <- "));
                    }
                }
                return Ok(calls);
            }
        }
    }

    fn calls_in(
        &self,
        file: &FileIndex,
        self_ty: Option<&str>,
        sig: &syn::Signature,
        block: &syn::Block,
        unit: &str,
        out: &mut BTreeSet<SdkCall>,
    ) {
        let mut bindings = HashMap::new();
        for input in &sig.inputs {
            if let syn::FnArg::Typed(pt) = input {
                if let (syn::Pat::Ident(id), Some(p)) = (&*pt.pat, type_path(&pt.ty)) {
                    if let Some(c) = file.sdk_client_crate(&p) {
                        bindings.insert(id.ident.to_string(), c);
                    }
                }
            }
        }
        let self_fields = self_ty
            .and_then(|t| file.structs.get(t))
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|(n, ty)| {
                        type_path(ty)
                            .and_then(|p| file.sdk_client_crate(&p))
                            .map(|c| (n.clone(), c))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let crates = file.client_crates();
        let sole_client = (crates.len() == 1)
            .then(|| crates.into_iter().next())
            .flatten();
        let mut finder = CallFinder {
            file,
            bindings,
            self_fields,
            sole_client,
            calls: Vec::new(),
        };
        finder.visit_block(block);
        let site = format!(
            "{}:{unit}",
            file.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("?")
        );
        for (service_crate, operation) in finder.calls {
            out.insert(SdkCall {
                service_crate,
                operation,
                site: site.clone(),
            });
        }
    }

    /// The functions and types a body names, resolved within the crates of `closure`.
    fn references(
        &self,
        fi: usize,
        self_ty: Option<&str>,
        block: &syn::Block,
        sig: &syn::Signature,
        closure: &BTreeSet<String>,
    ) -> Vec<Node> {
        let file = &self.files[fi];
        let mut collector = PathCollector::default();
        collector.visit_block(block);
        collector.visit_signature(sig);
        let mut out = Vec::new();
        for written in collector.paths {
            let mut segs: Vec<String> = written.split("::").map(str::to_string).collect();
            if let (Some(first), Some(ty)) = (segs.first_mut(), self_ty) {
                if first == "Self" {
                    *first = ty.to_string();
                }
            }
            // The path as written, and with a leading imported name expanded (a module of this
            // crate may share its name with an imported macro, e.g. `routes`).
            let mut candidates = vec![segs.clone()];
            if let Some(full) = segs.first().and_then(|f| file.uses.get(f)) {
                let mut expanded: Vec<String> = full.split("::").map(str::to_string).collect();
                expanded.extend(segs.iter().skip(1).cloned());
                candidates.push(expanded);
            }
            for segs in candidates {
                self.resolve(file, &segs, closure, &mut out);
            }
        }
        out
    }

    /// The items a path names: free functions, types and associated functions of the crate it
    /// points into; a module-qualified path prefers the files of that module.
    fn resolve(
        &self,
        file: &FileIndex,
        segs: &[String],
        closure: &BTreeSet<String>,
        out: &mut Vec<Node>,
    ) {
        let (krate, module): (String, &[String]) = match segs.first().map(String::as_str) {
            Some("crate") | Some("self") | Some("super") => (
                file.crate_ident.clone(),
                segs.get(1..segs.len().saturating_sub(1)).unwrap_or(&[]),
            ),
            Some(first) if closure.contains(first) => (
                first.to_string(),
                segs.get(1..segs.len().saturating_sub(1)).unwrap_or(&[]),
            ),
            Some(_) if segs.len() == 1 => (file.crate_ident.clone(), &[]),
            // `Type::function` for a type of this crate named without its module.
            Some(first) if self.defines_type(&file.crate_ident, first) => {
                (file.crate_ident.clone(), &[])
            }
            // `module::item` relative to the crate root (`pub use module::Type` in lib.rs).
            Some(first) if self.is_module(&file.crate_ident, first) => (
                file.crate_ident.clone(),
                segs.get(..segs.len().saturating_sub(1)).unwrap_or(&[]),
            ),
            _ => return,
        };
        // `Type::function`: that associated function of the type.
        if let [.., ty, method] = segs {
            let is_type = self
                .files
                .iter()
                .any(|f| f.crate_ident == krate && f.impls.iter().any(|(t, _)| t == ty));
            if is_type {
                out.push(Node::Method(krate.clone(), ty.clone(), method.clone()));
            }
        }
        // Files of the named module (`onboard::definition` → `onboard.rs`, `onboard/mod.rs`),
        // when the path names one; otherwise every file of the crate (re-exports).
        let in_module = |f: &FileIndex| match module.last() {
            None => true,
            Some(m) => {
                f.path.file_stem().is_some_and(|s| s == m.as_str())
                    || (f.path.file_stem().is_some_and(|s| s == "mod")
                        && f.path
                            .parent()
                            .and_then(|p| p.file_name())
                            .is_some_and(|d| d == m.as_str()))
            }
        };
        let mut names: Vec<&String> = segs.iter().rev().take(2).collect();
        names.dedup();
        for name in names {
            let defines = |f: &FileIndex| {
                f.crate_ident == krate
                    && (f.free_fns.iter().any(|x| x.sig.ident == name.as_str())
                        || f.structs.contains_key(name.as_str())
                        || f.impls.iter().any(|(t, _)| t == name))
            };
            let narrowed = self.files.iter().any(|f| defines(f) && in_module(f));
            for (gi, f) in self.files.iter().enumerate() {
                if !defines(f) || (narrowed && !in_module(f)) {
                    continue;
                }
                if f.free_fns.iter().any(|x| x.sig.ident == name.as_str()) {
                    out.push(Node::Fn(gi, name.clone()));
                }
                if f.structs.contains_key(name.as_str()) || f.impls.iter().any(|(t, _)| t == name) {
                    out.push(Node::Type(krate.clone(), name.clone()));
                }
            }
        }
    }

    /// Whether crate `krate` defines a struct or has an `impl` block named `name`.
    fn defines_type(&self, krate: &str, name: &str) -> bool {
        self.files.iter().any(|f| {
            f.crate_ident == krate
                && (f.structs.contains_key(name) || f.impls.iter().any(|(t, _)| t == name))
        })
    }

    /// Whether crate `krate` has a module file `name.rs` or folder `name/`.
    fn is_module(&self, krate: &str, name: &str) -> bool {
        self.crates.get(krate).is_some_and(|c| {
            let src = c.dir.join("src");
            src.join(format!("{name}.rs")).is_file()
                || src.join(name).is_dir()
                || self.files.iter().any(|f| {
                    f.crate_ident == krate
                        && (f.path.file_stem().is_some_and(|s| s == name)
                            || f.path
                                .parent()
                                .and_then(|p| p.file_name())
                                .is_some_and(|d| d == name))
                })
        })
    }

    /// The IAM actions of `calls`, each with the call sites that need it.
    pub fn actions(
        &self,
        calls: &BTreeSet<SdkCall>,
    ) -> Result<BTreeMap<Action, BTreeSet<String>>, AnalysisError> {
        let mut out: BTreeMap<Action, BTreeSet<String>> = BTreeMap::new();
        for call in calls {
            let prefix =
                iam_prefix(&call.service_crate).ok_or_else(|| AnalysisError::UnknownService {
                    service_crate: call.service_crate.clone(),
                    operation: call.operation.clone(),
                })?;
            let op = pascal_case(&call.operation);
            let file = call.site.split(':').next().unwrap_or_default();
            let facts = UnitFacts {
                transact_kinds: self
                    .files
                    .iter()
                    .filter(|f| f.path.file_name().and_then(|n| n.to_str()) == Some(file))
                    .flat_map(|f| f.transact_kinds.iter().cloned())
                    .collect(),
            };
            let actions = dependent_actions(prefix, &op, &facts)
                .unwrap_or_else(|| vec![format!("{prefix}:{op}")]);
            for a in actions {
                out.entry(Action(a)).or_default().insert(call.site.clone());
            }
        }
        Ok(out)
    }
}

fn index_file(path: &Path, crate_ident: &str) -> Result<FileIndex, AnalysisError> {
    let text = read(path)?;
    let ast = syn::parse_file(&text).map_err(|e| AnalysisError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut index = FileIndex {
        path: path.to_path_buf(),
        crate_ident: crate_ident.to_string(),
        ..FileIndex::default()
    };
    index_items(&ast.items, &mut index);
    for (needle, kind) in [
        ("Put::builder", "PutItem"),
        ("Delete::builder", "DeleteItem"),
        ("Update::builder", "UpdateItem"),
        ("ConditionCheck::builder", "ConditionCheckItem"),
    ] {
        if text.contains("transact_write_items") && text.contains(needle) {
            index.transact_kinds.insert(kind.to_string());
        }
    }
    Ok(index)
}

fn index_items(items: &[syn::Item], index: &mut FileIndex) {
    for item in items {
        match item {
            syn::Item::Use(u) => collect_uses("", &u.tree, &mut index.uses),
            syn::Item::Struct(s) => {
                let fields = s
                    .fields
                    .iter()
                    .filter_map(|f| f.ident.as_ref().map(|i| (i.to_string(), f.ty.clone())))
                    .collect();
                index.structs.insert(s.ident.to_string(), fields);
            }
            syn::Item::Fn(f) => index.free_fns.push(f.clone()),
            syn::Item::Impl(imp) => {
                let Some(name) =
                    type_path(&imp.self_ty).and_then(|p| p.rsplit("::").next().map(str::to_string))
                else {
                    continue;
                };
                let methods = imp
                    .items
                    .iter()
                    .filter_map(|i| match i {
                        syn::ImplItem::Fn(f) => Some(f.clone()),
                        _ => None,
                    })
                    .collect();
                index.impls.push((name, methods));
            }
            // Inline modules other than tests (test code never runs in a Lambda).
            syn::Item::Mod(m) => {
                let is_test = m.attrs.iter().any(|a| {
                    a.path().is_ident("cfg")
                        && quote::ToTokens::to_token_stream(&a.meta)
                            .to_string()
                            .contains("test")
                });
                if let (false, Some((_, items))) = (is_test, &m.content) {
                    index_items(items, index);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn operation_names_follow_the_sdk_rule() {
        assert_eq!(pascal_case("get_role_policy"), "GetRolePolicy");
        assert_eq!(
            pascal_case("list_security_profile_applications"),
            "ListSecurityProfileApplications"
        );
        assert_eq!(
            Action("iam:GetRolePolicy".into()),
            Action("IAM:getrolepolicy".into())
        );
    }

    fn analyse(files: &[(&str, &str)], main: &str) -> BTreeSet<String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("onboard-infra-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app/src")).unwrap();
        std::fs::create_dir_all(dir.join("adapters/src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\", \"adapters\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app/Cargo.toml"),
            "[package]\nname = \"app\"\n[dependencies]\nadapters = { path = \"../adapters\" }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("adapters/Cargo.toml"),
            "[package]\nname = \"adapters\"\n",
        )
        .unwrap();
        for (name, text) in files {
            std::fs::write(dir.join("adapters/src").join(name), text).unwrap();
        }
        std::fs::write(dir.join("app/src/main.rs"), main).unwrap();
        let a = Analysis::load(&dir).unwrap();
        let calls = a
            .reachable_calls("app", &dir.join("app/src/main.rs"))
            .unwrap();
        let actions = a.actions(&calls).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        actions.keys().map(|a| a.0.clone()).collect()
    }

    const ADAPTERS: &str = r#"
        use aws_sdk_dynamodb::Client;
        use aws_sdk_dynamodb::types::{Put, Delete};
        pub struct Store { client: Client }
        impl Store {
            pub fn new(client: Client) -> Self { Store { client } }
            async fn tx(&self) {
                let p = Put::builder(); let d = Delete::builder();
                self.client.transact_write_items().send().await;
            }
        }
        #[async_trait]
        impl SagaStore for Store {
            async fn get(&self, id: &str) { self.client.get_item().send().await; }
            async fn save(&self, id: &str) { self.tx().await; }
            async fn scan_all(&self) { self.client.scan().send().await; }
        }
        pub async fn create_table(client: &Client) { client.create_table().send().await; }
    "#;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_methods_something_calls_count() {
        // Built, and used through a trait object elsewhere: `get` and `save` run, `scan_all`
        // never does; create_table is never reached.
        let main = r#"
            fn main() { let s: Arc<dyn SagaStore> = Arc::new(adapters::lib::Store::new(c)); run(s); }
            fn run(s: Arc<dyn SagaStore>) { s.get("x"); s.save("y"); }
        "#;
        let got = analyse(&[("lib.rs", ADAPTERS)], main);
        assert_eq!(
            got,
            set(&[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem"
            ]),
            "transactions map to their item actions"
        );
    }

    #[test]
    fn free_functions_are_followed_and_unbuilt_adapters_ignored() {
        let main = "fn main() { adapters::create_table(&c); }";
        let got = analyse(&[("lib.rs", ADAPTERS)], main);
        assert_eq!(got, set(&["dynamodb:CreateTable"]));
        let none = analyse(&[("lib.rs", ADAPTERS)], "fn main() { x.get(1); }");
        assert!(
            none.is_empty(),
            "a call by name alone builds nothing: {none:?}"
        );
    }

    #[test]
    fn a_new_operation_in_an_adapter_is_picked_up() {
        let more = ADAPTERS.replace(
            "async fn get(&self, id: &str) {",
            "async fn get(&self, id: &str) { let c = &self.client; c.query().send().await;",
        );
        let main = "use adapters::Store; fn main() { let s = Store::new(c); s.get(1); }";
        let got = analyse(&[("lib.rs", &more)], main);
        assert!(got.contains("dynamodb:Query"), "{got:?}");
    }

    #[test]
    fn calls_inside_macros_count() {
        let main = r#"
            fn main() {
                macro_rules! go { ($s:expr) => { $s.scan_all() }; }
                let s = adapters::Store::new(c);
                go!(s);
            }
        "#;
        let got = analyse(&[("lib.rs", ADAPTERS)], main);
        assert_eq!(got, set(&["dynamodb:Scan"]));
    }
}
