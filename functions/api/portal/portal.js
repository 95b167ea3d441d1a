// The self-service portal. Every rule lives in the API: this script only collects the form,
// calls the API and shows what it answers. Values are always inserted as text (never markup).
"use strict";

const TERMINAL = ["SUCCEEDED", "ROLLED_BACK", "REFUSED", "ROLLBACK_FAILED", "NEEDS_ATTENTION"];
const STATES = ["PENDING", "RUNNING", "ROLLING_BACK", ...TERMINAL];
const KINDS = ["onboard", "change", "offboard", "adopt"];
const POLL_MS = 1000;

// ---- session: the token and identity arrive once in the URL fragment --------------------

const session = {
  get token() { return sessionStorage.getItem("onboard.token") || ""; },
  get actingAs() { return localStorage.getItem("onboard.as") || ""; },
  set actingAs(v) { localStorage.setItem("onboard.as", v); },
};

function takeFragmentCredentials() {
  const hash = location.hash.slice(1);
  if (hash.startsWith("/") || !hash.includes("=")) return;
  const p = new URLSearchParams(hash);
  // `token` from `onboard serve`; `access_token`/`id_token` from an identity provider's
  // implicit sign-in (API Gateway's JWT authorizer checks it).
  const token = p.get("token") || p.get("access_token") || p.get("id_token");
  if (token) sessionStorage.setItem("onboard.token", token);
  if (p.get("as")) session.actingAs = p.get("as");
  history.replaceState(null, "", location.pathname + location.search + "#/");
}

// ---- DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const view = () => document.getElementById("view");
let generation = 0; // bumped on every navigation; stale polls stop themselves

function show(...nodes) {
  generation += 1;
  view().replaceChildren(...nodes);
  view().focus();
  return generation;
}

function announce(text) {
  const a = document.getElementById("announce");
  a.textContent = "";
  setTimeout(() => { a.textContent = text; }, 50);
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
}

function randomKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "portal-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---- the API -----------------------------------------------------------------------------

async function api(method, path, body, extra) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = "Bearer " + session.token;
  if (session.actingAs) headers["X-Onboard-Principal"] = session.actingAs;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  Object.assign(headers, extra || {});
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (e) {
    return { status: 0, body: { title: "The API could not be reached", detail: String(e), fix: "Check that the server is running and retry." } };
  }
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  return { status: resp.status, body: data };
}

/// A problem+json answer as one readable block: what is wrong and how to fix it.
function problemBlock(body, status) {
  const b = body || {};
  return el("div", { class: "alert", role: "alert" },
    el("p", {}, el("strong", {}, b.title || ("HTTP " + status)), b.detail ? ": " + b.detail : ""),
    b.fix ? el("p", {}, "Fix: ", b.fix) : null,
    status === 401 ? el("p", {}, "Open the link `onboard serve` printed (it carries the token), and fill in \u201cActing as\u201d.") : null);
}

// ---- the onboard form --------------------------------------------------------------------

const FIELDS = [
  { key: "displayName", label: "Display name", help: "Shown to agents in the Apps launcher and in security profiles.", required: true },
  { key: "namespace", label: "Namespace", help: "Unique and permanent; suggested from the access URL when left empty." },
  { key: "description", label: "Description", multi: true, help: "Not shown to agents." },
  { key: "accessUrl", label: "Access URL", type: "url", help: "The HTTPS page the agent workspace shows in a frame.", required: true },
  { key: "approvedOrigins", label: "Approved origins", multi: true, help: "One origin per line (e.g. the app's sign-in page), https://host only." },
  { key: "permissions", label: "Permissions", multi: true, help: "One per line, e.g. User.Details.View or Contact.Details.View." },
  { key: "events", label: "Events", multi: true, help: "Events the app subscribes to, one per line as source::name (deprecated by AWS; usually empty)." },
  { key: "instances", label: "Instances", multi: true, help: "Connect instance ids or ARNs, one per line.", required: true },
  { key: "securityProfiles", label: "Security profiles", multi: true, help: "One line per instance: INSTANCE: PROFILE, PROFILE (ids or ARNs)." },
  { key: "ticket", label: "Ticket", help: "The change ticket this request belongs to, if any." },
];

/// Which form field a problem's JSON path belongs to.
function fieldOf(path) {
  const head = String(path || "").split(/[.[]/)[0];
  if (head === "subscriptions" || head === "publications") return "events";
  if (head === "requester") return "ticket";
  return FIELDS.some((f) => f.key === head) ? head : null;
}

function specFrom(form) {
  const v = (k) => form.elements[k].value.trim();
  const spec = { displayName: v("displayName"), accessUrl: v("accessUrl") };
  if (v("namespace")) spec.namespace = v("namespace");
  if (v("description")) spec.description = v("description");
  const origins = lines(form.elements.approvedOrigins.value);
  if (origins.length) spec.approvedOrigins = origins;
  const perms = lines(form.elements.permissions.value);
  if (perms.length) spec.permissions = perms;
  const events = lines(form.elements.events.value);
  if (events.length) spec.subscriptions = events.map((event) => ({ event }));
  spec.instances = lines(form.elements.instances.value);
  const grants = lines(form.elements.securityProfiles.value).map((line) => {
    const at = line.indexOf(":", line.startsWith("arn:") ? line.indexOf("instance/") : 0);
    if (at < 0) return { instance: line, profiles: [] };
    return {
      instance: line.slice(0, at).trim(),
      profiles: line.slice(at + 1).split(",").map((p) => p.trim()).filter((p) => p),
    };
  });
  if (grants.length) spec.securityProfiles = grants;
  if (v("ticket")) spec.requester = { ticketId: v("ticket") };
  return spec;
}

function renderForm() {
  const form = el("form", { id: "onboard-form", novalidate: true, onsubmit: (e) => e.preventDefault() });
  for (const f of FIELDS) {
    const id = "field-" + f.key;
    const input = f.multi
      ? el("textarea", { id, name: f.key, rows: 3, spellcheck: "false" })
      : el("input", { id, name: f.key, type: f.type || "text", spellcheck: "false", autocomplete: "off" });
    input.setAttribute("aria-describedby", `help-${f.key} error-${f.key} warning-${f.key}`);
    if (f.required) input.setAttribute("aria-required", "true");
    form.append(el("div", { class: "field", id: "wrap-" + f.key },
      el("label", { for: id }, f.label),
      el("span", { class: "help", id: "help-" + f.key }, f.help),
      input,
      el("p", { class: "field-error", id: "error-" + f.key }),
      el("p", { class: "field-warning", id: "warning-" + f.key })));
  }
  const summary = el("div", { id: "form-errors", class: "alert", role: "alert", tabindex: "-1" });
  const preview = el("section", { id: "preview", "aria-labelledby": "preview-title", hidden: true });
  const previewBtn = el("button", { type: "button", id: "preview-plan" }, "Preview plan");
  const submitBtn = el("button", { type: "button", id: "submit", disabled: true, "aria-describedby": "submit-help" }, "Submit");
  const submitHelp = el("span", { class: "help", id: "submit-help" }, "Preview the plan first; Submit is enabled when it shows no error.");
  form.append(summary, el("div", { class: "actions" }, previewBtn, submitBtn, submitHelp));
  let key = randomKey();
  let suggested = false;

  form.addEventListener("input", (e) => {
    if (e.target.name === "namespace") suggested = false;
    if (!submitBtn.disabled) {
      submitBtn.disabled = true;
      submitHelp.textContent = "The form changed: preview the plan again.";
    }
  });
  form.elements.accessUrl.addEventListener("change", async () => {
    const ns = form.elements.namespace;
    if (ns.value.trim() && !suggested) return;
    const spec = specFrom(form);
    delete spec.namespace; // let the API derive it from the access URL
    const r = await api("POST", "/preflight", spec);
    if (r.status === 200 && r.body && r.body.namespace && (!ns.value.trim() || suggested)) {
      ns.value = r.body.namespace;
      suggested = true;
      document.getElementById("warning-namespace").textContent = "Suggested from the access URL; change it if you like (it can never be changed later).";
    }
  });

  previewBtn.addEventListener("click", async () => {
    previewBtn.disabled = true;
    const r = await api("POST", "/preflight", specFrom(form));
    previewBtn.disabled = false;
    clearProblems(form, summary);
    if (r.status !== 200) {
      summary.replaceChildren(problemBlock(r.body, r.status));
      return;
    }
    const pf = r.body;
    if (pf.namespace && !form.elements.namespace.value.trim()) {
      form.elements.namespace.value = pf.namespace;
      suggested = true;
    }
    showProblems(form, summary, pf.problems || [], pf.warnings || []);
    renderPreview(preview, pf);
    const errors = (pf.findings || []).filter((f) => f.severity === "ERROR").length;
    submitBtn.disabled = !pf.ok;
    submitHelp.textContent = pf.ok
      ? "Ready: Submit starts the onboarding."
      : (pf.problems || []).length
        ? "Fix the fields marked above, then preview again."
        : `Preflight found ${errors} error(s): fix them, then preview again.`;
    announce(pf.ok ? "Plan ready; Submit is enabled." : "The plan has problems; see the messages.");
    if (!pf.ok && (pf.problems || []).length) summary.focus();
    key = randomKey();
  });

  submitBtn.addEventListener("click", async () => {
    submitBtn.disabled = true;
    const r = await api("POST", "/applications", specFrom(form), { "Idempotency-Key": key });
    if (r.status === 202 || r.status === 200) {
      location.hash = "#/sagas/" + encodeURIComponent(r.body.sagaId);
      return;
    }
    clearProblems(form, summary);
    if (r.body && Array.isArray(r.body.problems)) {
      showProblems(form, summary, r.body.problems, r.body.warnings || []);
    } else {
      summary.replaceChildren(problemBlock(r.body, r.status));
    }
    summary.focus();
  });

  show(el("h1", {}, "Onboard an app"),
    el("p", {}, "Fill in the app's details, preview what will change in each Connect instance, then submit. Nothing changes until you submit."),
    form, preview);
}

function clearProblems(form, summary) {
  for (const f of FIELDS) {
    document.getElementById("error-" + f.key).textContent = "";
    document.getElementById("warning-" + f.key).textContent = "";
    form.elements[f.key].removeAttribute("aria-invalid");
    document.getElementById("wrap-" + f.key).removeAttribute("aria-invalid");
  }
  summary.replaceChildren();
}

function showProblems(form, summary, problems, warnings) {
  const orphans = [];
  const put = (list, kind) => {
    for (const p of list) {
      const key = fieldOf(p.field);
      const text = `${p.field === key ? "" : p.field + ": "}${p.problem}. Fix: ${p.fix}`;
      if (!key) { if (kind === "error") orphans.push(p); continue; }
      const target = document.getElementById(`${kind}-${key}`);
      target.textContent = target.textContent ? target.textContent + "\n" + text : text;
      if (kind === "error") {
        form.elements[key].setAttribute("aria-invalid", "true");
        document.getElementById("wrap-" + key).setAttribute("aria-invalid", "true");
      }
    }
  };
  put(problems, "error");
  put(warnings, "warning");
  if (problems.length) {
    summary.replaceChildren(el("p", {}, el("strong", {}, `${problems.length} problem(s) to fix`), ": each is shown next to its field."));
    if (orphans.length) summary.append(el("ul", {}, orphans.map((p) => el("li", {}, `${p.field}: ${p.problem}. Fix: ${p.fix}`))));
  }
}

function renderPreview(section, pf) {
  const plan = pf.preview;
  section.hidden = false;
  const steps = el("ol", { id: "plan-steps" });
  const policies = el("div", { id: "plan-policies" });
  const profiles = el("ul", { id: "plan-profiles" });
  const findings = el("ul", { id: "plan-findings" });
  if (plan) {
    for (const s of plan.steps || []) {
      steps.append(el("li", {}, el("code", {}, s.step), s.instance ? ` on ${s.instance}` : "", ": ", s.action));
    }
    for (const p of plan.slrPolicies || []) {
      const pre = el("pre", { class: "diff", "aria-label": `Policy change on ${p.instance}` });
      for (const line of p.diff || []) {
        pre.append(el("span", { class: line.startsWith("+ ") ? "add" : line.startsWith("- ") ? "del" : "" }, line), "\n");
      }
      policies.append(el("h4", {}, `${p.role || "The service-linked role"} of ${p.instance}: policy ${p.policyName}`), pre);
    }
    for (const g of plan.securityProfiles || []) {
      profiles.append(el("li", {}, `${g.name ? g.name + " (" + g.profile + ")" : g.profile} on ${g.instance}: grant ACCESS`));
    }
    if (!(plan.securityProfiles || []).length) profiles.append(el("li", {}, "No security profile is granted access."));
  } else {
    steps.append(el("li", {}, "No plan until the fields above are valid."));
  }
  for (const f of pf.findings || []) {
    findings.append(el("li", { class: "finding " + String(f.severity).toLowerCase() },
      el("strong", {}, f.severity), ` ${f.check}: ${f.evidence}`, f.fix ? el("br") : null, f.fix ? `Fix: ${f.fix}` : null));
  }
  if (!(pf.findings || []).length) findings.append(el("li", {}, pf.problems && pf.problems.length ? "Preflight runs once the fields are valid." : "No findings."));
  section.replaceChildren(
    el("h2", { id: "preview-title" }, "Plan"),
    el("h3", {}, "Preflight findings"), findings,
    el("h3", {}, "Steps"), steps,
    el("h3", {}, "Service-linked role policies"), policies,
    el("h3", {}, "Security profile grants"), profiles);
}

// ---- a saga's live timeline --------------------------------------------------------------

async function renderSaga(id) {
  const state = el("span", { id: "saga-state", role: "status", class: "state" }, "loading");
  const timeline = el("ol", { id: "timeline" });
  const error = el("div", { id: "saga-error" });
  const resources = el("dl", { id: "saga-resources" });
  const title = el("h1", {}, "Saga ", el("code", {}, id));
  const links = el("p", { id: "saga-links" });
  const mine = show(title, el("p", {}, "State: ", state), error, el("h2", {}, "Steps"), timeline,
    el("h2", {}, "Resources"), resources, links);
  let last = "";
  for (;;) {
    if (mine !== generation) return;
    const r = await api("GET", "/applications/" + encodeURIComponent(id));
    if (mine !== generation) return;
    if (r.status !== 200) {
      error.replaceChildren(problemBlock(r.body, r.status));
      state.textContent = "unknown";
      if (r.status !== 503 && r.status !== 0) return;
    } else {
      const s = r.body;
      title.replaceChildren(`${s.kind} of `, el("code", {}, s.namespace));
      state.textContent = s.status;
      state.className = "state " + s.status;
      if (s.status !== last) { announce("Saga " + s.status); last = s.status; }
      timeline.replaceChildren(...(s.steps || []).map((n) => el("li", {},
        el("code", {}, n.step), n.instance ? ` on ${n.instance}` : "", " \u2014 ", el("strong", {}, n.state),
        n.attempts > 1 ? ` (${n.attempts} attempts)` : "",
        n.error ? el("div", { class: "field-error" }, `${n.error.code}: ${n.error.message}`) : null,
        n.undoError ? el("div", { class: "field-error" }, `undo ${n.undoError.code}: ${n.undoError.message}`) : null)));
      error.replaceChildren();
      if (s.lastError && s.status !== "SUCCEEDED") {
        error.append(el("div", { class: "alert" },
          el("p", {}, el("strong", {}, "Cause: "), `${s.lastError.code}: ${s.lastError.message}`),
          s.lastError.fix ? el("p", {}, el("strong", {}, "Fix: "), s.lastError.fix) : null,
          s.nextAction ? el("p", {}, el("strong", {}, "Next: "), s.nextAction) : null));
      } else if (s.nextAction && TERMINAL.includes(s.status) && s.status !== "SUCCEEDED") {
        error.append(el("p", { class: "note" }, s.nextAction));
      }
      const res = s.resources || {};
      resources.replaceChildren();
      const created = (s.steps || []).find((n) => n.step === "create_application");
      const undone = created && created.state === "UNDONE";
      if (res.applicationArn) resources.append(el("dt", {}, undone ? "Application (deleted by the rollback)" : "Application"), el("dd", { class: "mono" }, res.applicationArn));
      for (const [inst, arn] of Object.entries(res.associations || {})) {
        resources.append(el("dt", {}, `Association on ${inst}`), el("dd", { class: "mono" }, arn));
      }
      if (!resources.children.length) {
        const gone = (s.kind === "onboard" && (s.status === "ROLLED_BACK" || s.status === "REFUSED"))
          || (s.kind === "offboard" && s.status === "SUCCEEDED");
        resources.append(el("dt", {}, "None"), el("dd", {}, gone ? "nothing of it is left in AWS"
          : TERMINAL.includes(s.status) ? "this saga made no new resource" : "not yet"));
      }
      const root = s.parent || ((s.kind === "onboard" || s.kind === "adopt") ? s.id : null);
      links.replaceChildren();
      if (root && (s.parent || s.status === "SUCCEEDED")) links.append(el("a", { href: "#/apps/" + encodeURIComponent(root) }, "Open the application"));
      if (TERMINAL.includes(s.status)) return;
    }
    await new Promise((ok) => setTimeout(ok, POLL_MS));
  }
}

// ---- the applications list ---------------------------------------------------------------

async function renderList() {
  const stateSel = el("select", { id: "filter-state" }, el("option", { value: "" }, "any"), STATES.map((s) => el("option", { value: s }, s)));
  const kindSel = el("select", { id: "filter-kind" }, el("option", { value: "" }, "any"), KINDS.map((k) => el("option", { value: k }, k)));
  const requester = el("input", { id: "filter-requester", type: "search" });
  const namespace = el("input", { id: "filter-namespace", type: "search" });
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const problem = el("div");
  const mine = show(el("h1", {}, "Applications and their sagas"),
    el("div", { class: "filters", role: "search" },
      el("div", {}, el("label", { for: "filter-state" }, "State"), stateSel),
      el("div", {}, el("label", { for: "filter-kind" }, "Kind"), kindSel),
      el("div", {}, el("label", { for: "filter-requester" }, "Requester"), requester),
      el("div", {}, el("label", { for: "filter-namespace" }, "Namespace"), namespace)),
    problem,
    el("div", { class: "table-wrap" }, el("table", { id: "applications" },
      el("caption", { class: "visually-hidden" }, "Sagas, newest first"),
      el("thead", {}, el("tr", {}, ["Saga", "Kind", "Namespace", "State", "Requester", "Ticket", "Updated"].map((h) => el("th", { scope: "col" }, h)))),
      body)),
    more, el("p", {}, el("a", { href: "#/new" }, "Onboard an app")));
  let cursor = null;
  let loads = 0; // only the newest listing request may fill the table
  const load = async (reset) => {
    const seq = ++loads;
    if (reset) cursor = null;
    const q = new URLSearchParams({ limit: "50" });
    if (stateSel.value) q.set("status", stateSel.value);
    if (kindSel.value) q.set("kind", kindSel.value);
    if (requester.value.trim()) q.set("requester", requester.value.trim());
    if (namespace.value.trim()) q.set("namespace", namespace.value.trim());
    if (cursor) q.set("cursor", cursor);
    const r = await api("GET", "/applications?" + q);
    if (mine !== generation || seq !== loads) return;
    if (reset) body.replaceChildren();
    problem.replaceChildren();
    if (r.status !== 200) { problem.append(problemBlock(r.body, r.status)); return; }
    for (const s of r.body.items || []) {
      const root = s.kind === "onboard" || s.kind === "adopt";
      body.append(el("tr", {},
        el("td", {}, el("a", { href: "#/sagas/" + encodeURIComponent(s.id) }, s.id),
          root && s.status === "SUCCEEDED" ? [" ", el("a", { href: "#/apps/" + encodeURIComponent(s.id), "aria-label": `Application ${s.namespace}` }, "(application)")] : null),
        el("td", {}, s.kind), el("td", {}, s.namespace), el("td", { class: "state " + s.status }, s.status),
        el("td", {}, s.requestedBy || ""), el("td", {}, s.ticketId || ""), el("td", {}, when(s.updatedAt))));
    }
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 7 }, "Nothing matches yet.")));
    cursor = r.body.nextCursor || null;
    more.hidden = !cursor;
  };
  for (const c of [stateSel, kindSel]) c.addEventListener("change", () => load(true));
  let typing = null;
  for (const c of [requester, namespace]) {
    c.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load(true), 300); });
  }
  more.addEventListener("click", () => load(false));
  await load(true);
}

// ---- an application page -----------------------------------------------------------------

async function renderApp(id) {
  const problem = el("div");
  const mine = show(el("h1", {}, "Application ", el("code", {}, id)), problem);
  const [r, drift] = await Promise.all([
    api("GET", "/applications/" + encodeURIComponent(id)),
    api("GET", "/applications/" + encodeURIComponent(id) + "/drift"),
  ]);
  if (mine !== generation) return;
  if (r.status !== 200) { problem.append(problemBlock(r.body, r.status)); return; }
  const s = r.body;
  const app = s.application;
  const hist = await api("GET", "/applications/" + encodeURIComponent(id) + "/history");
  if (mine !== generation) return;
  const act = async (method, path, body) => {
    const a = await api(method, path, body, { "Idempotency-Key": randomKey() });
    if (a.status === 202) { location.hash = "#/sagas/" + encodeURIComponent(a.body.sagaId); return; }
    problem.replaceChildren(problemBlock(a.body, a.status));
    problem.focus();
  };
  const nodes = [el("h1", {}, app ? app.fields.displayName : s.namespace, " ", el("span", { class: "help" }, s.namespace)), problem];
  if (!app) {
    nodes.push(el("p", { class: "note" }, `This application is not under management now (its onboarding is ${s.status}).`),
      el("p", {}, el("a", { href: "#/sagas/" + encodeURIComponent(id) }, "Its onboarding saga")));
  } else {
    const f = app.fields;
    nodes.push(el("h2", {}, "Configuration"), el("dl", { id: "app-config" },
      el("dt", {}, "Namespace"), el("dd", { class: "mono" }, app.namespace),
      el("dt", {}, "Access URL"), el("dd", { class: "mono" }, f.accessUrl),
      el("dt", {}, "Approved origins"), el("dd", { class: "mono" }, (f.approvedOrigins || []).join(", ") || "none"),
      el("dt", {}, "Permissions"), el("dd", {}, (f.permissions || []).join(", ") || "none"),
      f.description ? [el("dt", {}, "Description"), el("dd", {}, f.description)] : null,
      el("dt", {}, "Application ARN"), el("dd", { class: "mono" }, app.app ? app.app.arn : ""),
      el("dt", {}, "State"), el("dd", {}, app.offboarded ? "offboarded" : "onboarded")));
    const rows = [...(app.instances || [])].map((inst) => {
      const paused = (app.paused || []).includes(inst);
      const profiles = (app.profiles && app.profiles[inst]) || [];
      const verb = paused ? "Resume" : "Pause";
      return el("tr", {},
        el("td", { class: "mono" }, inst), el("td", {}, paused ? "paused" : "active"),
        el("td", { class: "mono" }, profiles.join(", ") || "none"),
        el("td", {}, app.offboarded ? null : el("button", { type: "button", class: "secondary", "aria-label": `${verb} on ${inst}`,
          onclick: () => act("POST", `/applications/${encodeURIComponent(id)}/instances/${encodeURIComponent(inst)}/${verb.toLowerCase()}`) }, verb)));
    });
    nodes.push(el("h2", {}, "Instances"), el("div", { class: "table-wrap" }, el("table", { id: "app-instances" },
      el("thead", {}, el("tr", {}, ["Instance", "State", "Security profiles", "Action"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
    const driftBox = el("div", { id: "app-drift" });
    if (drift.status === 200 && drift.body) {
      const items = drift.body.items || [];
      driftBox.append(el("p", {}, items.length ? `${items.length} difference(s) found ${when(drift.body.checkedAt)}:` : `No drift at the last check ${when(drift.body.checkedAt)}.`));
      if (items.length) driftBox.append(el("ul", {}, items.map((d) => el("li", {}, d.detail || d.kind))));
      if (items.length && !app.offboarded) driftBox.append(el("button", { type: "button", onclick: () => act("POST", `/applications/${encodeURIComponent(id)}/drift/fix`, {}) }, "Fix drift"));
    } else {
      driftBox.append(el("p", {}, "Not checked yet (`onboard drift` or the scheduled drift check records one)."));
    }
    nodes.push(el("h2", {}, "Drift"), driftBox);
    if (!app.offboarded) nodes.push(el("h2", {}, "Edit"), editForm(id, app));
    if (!app.offboarded) {
      const confirmInput = el("input", { id: "confirm-namespace", spellcheck: "false", autocomplete: "off" });
      const goBtn = el("button", { type: "button", class: "danger", disabled: true }, "Offboard application");
      confirmInput.addEventListener("input", () => { goBtn.disabled = confirmInput.value.trim() !== app.namespace; });
      goBtn.addEventListener("click", () => act("DELETE", "/applications/" + encodeURIComponent(id)));
      const confirmBox = el("div", { id: "offboard-confirm", hidden: true },
        el("p", {}, "Offboarding removes the application, its associations, its service-linked-role statements and its security-profile grants from every instance."),
        el("label", { for: "confirm-namespace" }, "Type the namespace to confirm"), confirmInput,
        el("div", { class: "actions" }, goBtn));
      const openBtn = el("button", { type: "button", class: "danger", "aria-expanded": "false", "aria-controls": "offboard-confirm" }, "Offboard");
      openBtn.addEventListener("click", () => { confirmBox.hidden = false; openBtn.setAttribute("aria-expanded", "true"); confirmInput.focus(); });
      nodes.push(el("h2", {}, "Offboard"), openBtn, confirmBox);
    }
  }
  const hbody = el("tbody");
  for (const h of (hist.status === 200 && hist.body.entries) || []) {
    hbody.append(el("tr", {}, el("td", {}, when(Date.parse(h.createdAt))), el("td", {}, h.operation), el("td", {}, h.requester || ""),
      el("td", {}, h.ticketId || ""), el("td", {}, el("ul", { class: "changes" }, changesOf(h).map((c) => el("li", {}, c)))),
      el("td", { class: "state " + h.outcome }, h.outcome),
      el("td", {}, el("a", { href: "#/sagas/" + encodeURIComponent(h.sagaId) }, h.sagaId))));
  }
  nodes.push(el("h2", {}, "History"), el("div", { class: "table-wrap" }, el("table", { id: "app-history" },
    el("thead", {}, el("tr", {}, ["When", "Operation", "Who", "Ticket", "What changed", "Outcome", "Saga"].map((x) => el("th", { scope: "col" }, x)))), hbody)));
  view().replaceChildren(...nodes);
}

/// One history entry's changes as short lines: `field: before → after`, `demo-east: paused`.
function changesOf(h) {
  const show = (v) => (v === undefined || v === null ? "(none)" : typeof v === "string" ? v : JSON.stringify(v));
  const out = [];
  for (const f of h.fields || []) out.push(h.created ? `${f.field}: ${show(f.after)}` : `${f.field}: ${show(f.before)} → ${show(f.after)}`);
  for (const i of h.instances || []) out.push(`${i.alias || i.instance}: ${i.change}`);
  for (const p of h.profiles || []) {
    const parts = [...(p.added || []).map((x) => "+" + x), ...(p.removed || []).map((x) => "-" + x)];
    out.push(`profiles on ${p.alias || p.instance}: ${parts.join(" ")}`);
  }
  if (h.created && out.length === 0) out.push("created");
  return out;
}

/// The edit form: the current values, and a PATCH of the fields that changed.
function editForm(id, app) {
  const f = app.fields;
  const current = {
    displayName: f.displayName || "",
    description: f.description || "",
    accessUrl: f.accessUrl || "",
    approvedOrigins: (f.approvedOrigins || []).join("\n"),
    permissions: (f.permissions || []).join("\n"),
    instances: [...(app.instances || [])].join("\n"),
  };
  const keys = ["displayName", "description", "accessUrl", "approvedOrigins", "permissions", "instances"];
  const form = el("form", { id: "edit-form", novalidate: true, onsubmit: (e) => e.preventDefault() });
  for (const key of keys) {
    const field = FIELDS.find((x) => x.key === key);
    const inputId = "edit-" + key;
    const input = field.multi
      ? el("textarea", { id: inputId, name: key, rows: 3, spellcheck: "false" })
      : el("input", { id: inputId, name: key, type: field.type || "text", spellcheck: "false", autocomplete: "off" });
    input.value = current[key];
    input.setAttribute("aria-describedby", "edit-error-" + key);
    form.append(el("div", { class: "field" }, el("label", { for: inputId }, field.label), input,
      el("p", { class: "field-error", id: "edit-error-" + key })));
  }
  const summary = el("div", { class: "alert", role: "alert", id: "edit-errors" });
  const save = el("button", { type: "button" }, "Save changes");
  form.append(summary, el("div", { class: "actions" }, save));
  save.addEventListener("click", async () => {
    const patch = {};
    for (const key of keys) {
      const v = form.elements[key].value;
      if (v.trim() === current[key].trim()) continue;
      patch[key] = isList(key) ? lines(v) : v.trim();
    }
    summary.replaceChildren();
    for (const key of keys) document.getElementById("edit-error-" + key).textContent = "";
    if (!Object.keys(patch).length) { summary.append(el("p", {}, "Nothing changed.")); return; }
    const r = await api("PATCH", "/applications/" + encodeURIComponent(id), patch, { "Idempotency-Key": randomKey() });
    if (r.status === 202) { location.hash = "#/sagas/" + encodeURIComponent(r.body.sagaId); return; }
    if (r.body && Array.isArray(r.body.problems)) {
      for (const p of r.body.problems) {
        const key = fieldOf(p.field);
        const target = key && document.getElementById("edit-error-" + key);
        if (target) target.textContent = `${p.problem}. Fix: ${p.fix}`;
        else summary.append(el("p", {}, `${p.field}: ${p.problem}. Fix: ${p.fix}`));
      }
      summary.prepend(el("p", {}, el("strong", {}, `${r.body.problems.length} problem(s) to fix`), ": each is shown next to its field."));
    } else {
      summary.append(problemBlock(r.body, r.status));
    }
  });
  return form;
}

function isList(key) {
  return key === "approvedOrigins" || key === "permissions" || key === "instances";
}

// ---- routing -----------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "new") return renderForm();
  if (parts[0] === "sagas" && parts[1]) return renderSaga(parts[1]);
  if (parts[0] === "apps" && parts[1]) return renderApp(parts[1]);
  return renderList();
}

document.addEventListener("DOMContentLoaded", () => {
  takeFragmentCredentials();
  const who = document.getElementById("acting-as");
  who.value = session.actingAs;
  who.addEventListener("change", () => { session.actingAs = who.value.trim(); });
  window.addEventListener("hashchange", route);
  route();
});
