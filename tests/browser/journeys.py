"""Real-browser journeys through the portal served by `onboard serve --sandbox` at `GET /`.

Run by scripts/browser.sh, which finds Chromium and the onboard binary:

    .venv/bin/python tests/browser/journeys.py --chromium /usr/bin/chromium \
        --onboard target/debug/onboard [JOURNEY ...]

Each journey starts its own server (fresh state directory, free loopback port), opens the
portal URL the server printed in a fresh browser context, and ends with a full-page
screenshot in target/browser/<journey>.png, passed or failed. Selectors follow the page's
DOM contract only (labels, roles and the documented ids). A failing journey prints the step
that failed, the error, the page's visible text at that moment and the browser's console
errors; the run exits 1 if any journey failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crm-panel.json"

ACTION_TIMEOUT_MS = 10_000
SAGA_TIMEOUT_MS = 60_000
ENDED = ("SUCCEEDED", "ROLLED_BACK", "REFUSED", "ROLLBACK_FAILED", "NEEDS_ATTENTION")
ENDED_RE = re.compile(r"^\s*(" + "|".join(ENDED) + r")\s*$")
SAGA_HASH_RE = re.compile(r"#/sagas/([^/?#&]+)$")
GLITCH_RE = re.compile(r"\b(null|undefined|NaN)\b|\[object Object\]")
# The core's namespace characters (shared/core/src/spec.rs `is_namespace_char`) and length.
NAMESPACE_MAX = 211


class StepFailed(AssertionError):
    pass


def effective_namespace(access_url: str) -> str:
    """The namespace the core derives from an access URL when none is given.

    Mirrors `ApplicationSpec::effective_namespace` in shared/core/src/spec.rs: the lower-cased
    host, `-PORT` when the URL names a non-default port, then the path without trailing
    slashes, every character outside letters, digits and `/ . _ -` replaced by `-`, at most
    211 characters.
    """
    parts = urlsplit(access_url.strip())
    host = (parts.hostname or "").lower()
    raw = host
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        raw += f"-{parts.port}"
    raw += (parts.path or "/").rstrip("/")
    ns = "".join(c if (c.isascii() and c.isalnum()) or c in "/._-" else "-" for c in raw)
    return ns[:NAMESPACE_MAX]


def load_example() -> dict:
    spec = json.loads(EXAMPLE.read_text("utf-8"))
    profiles = [
        f"{sp['instance']}: {', '.join(sp['profiles'])}" for sp in spec.get("securityProfiles", [])
    ]
    return {
        "Display name": spec["displayName"],
        "Description": spec.get("description", ""),
        "Access URL": spec["accessUrl"],
        "Approved origins": "\n".join(spec.get("approvedOrigins", [])),
        "Permissions": "\n".join(spec.get("permissions", [])),
        "Events": "\n".join(s.get("event", "") for s in spec.get("subscriptions", [])),
        "Instances": "\n".join(spec.get("instances", [])),
        "Security profiles": "\n".join(profiles),
        "Ticket": "",
        "_instances": list(spec.get("instances", [])),
    }


class Journey:
    """One journey's page, its current step, and what to print when it fails."""

    def __init__(self, name: str, page: Page, server: Server):
        self.name = name
        self.page = page
        self.server = server
        self.step_name = "start"
        self.console: list[str] = []
        page.on(
            "console",
            lambda m: self.console.append(
                f"console.{m.type}: {m.text} ({m.location.get('url', '')})"
            )
            if m.type in ("error", "warning")
            else None,
        )
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on(
            "response",
            lambda r: self.console.append(f"HTTP {r.status} {r.request.method} {r.url}")
            if r.status >= 400
            else None,
        )

    @contextmanager
    def step(self, name: str):
        self.step_name = name
        yield

    # -- helpers on the contract -----------------------------------------------------------

    def open_portal(self) -> None:
        page = self.page
        url = self.server.portal_url
        with self.step("open the portal URL"):
            page.goto(url)
            expect(page.get_by_label("Acting as")).to_be_visible()
            nav = page.get_by_role("navigation")
            expect(nav.get_by_role("link", name="Applications", exact=True)).to_be_visible()
            expect(nav.get_by_role("link", name="Onboard an app", exact=True)).to_be_visible()
        with self.step("the fragment's token is taken and the hash becomes #/"):
            expect(page).to_have_url(re.compile(r"#/$"))
            if "token=" in page.url:
                raise StepFailed(f"the token is still in the URL: {page.url}")
        with self.step("'Acting as' is prefilled from the fragment's `as`"):
            fragment = urlsplit(url).fragment
            wanted = dict(kv.split("=", 1) for kv in fragment.split("&") if "=" in kv).get("as", "")
            expect(page.get_by_label("Acting as")).to_have_value(unquote(wanted))

    def go_new(self) -> None:
        page = self.page
        with self.step("follow 'Onboard an app'"):
            # The header's nav link (the list page may offer one of its own).
            nav = page.get_by_role("navigation")
            nav.get_by_role("link", name="Onboard an app", exact=True).click()
            expect(page).to_have_url(re.compile(r"#/new$"))
            expect(page.get_by_label("Display name", exact=True)).to_be_visible()

    def field(self, label: str):
        return self.page.get_by_label(label, exact=True)

    def fill_form(self, values: dict, namespace: str | None) -> None:
        with self.step("fill the form"):
            for label in (
                "Display name",
                "Description",
                "Access URL",
                "Approved origins",
                "Permissions",
                "Events",
                "Instances",
                "Security profiles",
                "Ticket",
            ):
                if label in values:
                    self.field(label).fill(values[label])
            if namespace is not None:
                self.field("Namespace").fill(namespace)

    def preview(self) -> None:
        with self.step("click 'Preview plan'"):
            self.page.get_by_role("button", name="Preview plan").click()

    def expect_plan(self) -> None:
        page = self.page
        with self.step("the preview lists the plan's steps"):
            expect(page.locator("#preview #plan-steps li").first).to_be_visible(
                timeout=SAGA_TIMEOUT_MS // 2
            )
        with self.step("the preview shows a '+ ' policy diff line"):
            diff = page.locator("#preview #plan-policies pre.diff").first
            expect(diff).to_be_visible()
            expect(diff).to_contain_text(re.compile(r"(^|\n)\+ "))
        with self.step("the preview has no ERROR finding"):
            # Case-sensitive: a WARNING's evidence may say "error sending request".
            errors = page.locator("#plan-findings li", has_text=re.compile(r"\bERROR\b"))
            if errors.count():
                raise StepFailed(
                    "preflight ERROR findings: " + " | ".join(errors.all_inner_texts())
                )

    def submit(self) -> str:
        page = self.page
        with self.step("Submit is enabled after a clean preview"):
            expect(page.get_by_role("button", name="Submit")).to_be_enabled()
        with self.step("click 'Submit' and land on the saga's timeline"):
            page.get_by_role("button", name="Submit").click()
            expect(page).to_have_url(SAGA_HASH_RE)
        return self.saga_id()

    def saga_id(self) -> str:
        m = SAGA_HASH_RE.search(self.page.url)
        if not m:
            raise StepFailed(f"not on a saga timeline: {self.page.url}")
        return m.group(1)

    def wait_saga(self, wanted: str) -> str:
        page = self.page
        with self.step(f"wait (<= {SAGA_TIMEOUT_MS // 1000}s) for #saga-state == {wanted}"):
            state = page.locator("#saga-state")
            expect(state).to_have_attribute("role", "status")
            expect(state).to_have_text(ENDED_RE, timeout=SAGA_TIMEOUT_MS)
            got = state.inner_text().strip()
            if got != wanted:
                err = page.locator("#saga-error")
                cause = err.inner_text() if err.count() else ""
                raise StepFailed(f"the saga ended {got}, not {wanted}; #saga-error: {cause!r}")
        with self.step("the timeline lists steps"):
            expect(page.locator("#timeline li").first).to_be_visible()
        return got

    def no_glitches(self, where: str) -> None:
        """The main view shows no JavaScript leftovers such as "null" or "undefined"."""
        with self.step(f"no 'null'/'undefined' rendered ({where})"):
            text = self.page.locator("#view").inner_text()
            hits = sorted(set(GLITCH_RE.findall(text)))
            if hits:
                lines = [line for line in text.splitlines() if GLITCH_RE.search(line)]
                raise StepFailed(f"the page renders {hits} in: {lines[:5]}")

    def screenshot(self, out_dir: Path) -> Path:
        path = out_dir / f"{self.name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def visible_text(self, limit: int = 6000) -> str:
        try:
            text = self.page.locator("body").inner_text(timeout=2000)
        except Exception as e:  # the page may be gone
            return f"<no visible text: {e}>"
        return text if len(text) <= limit else text[:limit] + "\n…(cut)"


# -- the journeys ----------------------------------------------------------------------------


def valid_onboarding(j: Journey) -> None:
    page = j.page
    values = load_example()
    suggested = effective_namespace(values["Access URL"])
    j.open_portal()
    j.go_new()
    with j.step("the new form's Namespace is empty"):
        expect(j.field("Namespace")).to_have_value("")
    with j.step("Submit is disabled before any preview"):
        expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    j.fill_form(values, namespace=None)
    j.preview()
    j.expect_plan()
    with j.step(f"Namespace is suggested from the access URL as {suggested!r}"):
        expect(j.field("Namespace")).to_have_value(suggested)
    j.no_glitches("preview")
    saga = j.submit()
    j.wait_saga("SUCCEEDED")
    with j.step("#saga-resources lists the AppIntegrations ARNs"):
        expect(page.locator("#saga-resources")).to_contain_text("arn:aws:app-integrations")
    j.no_glitches("timeline")
    # The README's picture of the portal: the timeline of a finished onboarding.
    page.screenshot(path=str(ROOT / "target" / "browser" / "valid_onboarding_timeline.png"), full_page=True)
    with j.step("'Applications' lists the saga"):
        page.get_by_role("navigation").get_by_role("link", name="Applications", exact=True).click()
        expect(page).to_have_url(re.compile(r"#/$"))
        table = page.locator("table#applications")
        link = table.locator(f'a[href$="#/sagas/{saga}"]')
        expect(link).to_have_count(1)
    with j.step("the 'State' filter SUCCEEDED keeps it, ROLLED_BACK hides it"):
        page.get_by_label("State", exact=True).select_option("SUCCEEDED")
        expect(link).to_have_count(1)
        page.get_by_label("State", exact=True).select_option("ROLLED_BACK")
        expect(link).to_have_count(0)
        page.get_by_label("State", exact=True).select_option(index=0)
        expect(link).to_have_count(1)
    with j.step("the 'Namespace' filter (typed, then Enter) finds it by its namespace"):
        ns_filter = page.get_by_label("Namespace", exact=True)
        ns_filter.fill("no-such-namespace")
        ns_filter.press("Enter")
        expect(link).to_have_count(0)
        ns_filter.fill(suggested)
        ns_filter.press("Enter")
        expect(link).to_have_count(1)


def invalid_form(j: Journey) -> None:
    page = j.page
    j.open_portal()
    j.go_new()
    j.fill_form(
        {
            "Display name": "",
            "Access URL": "http://not-https.example",
            "Instances": "not-an-instance",
            "Permissions": "Bogus.Permission",
        },
        namespace=None,
    )
    j.preview()
    for key in ("displayName", "accessUrl", "instances"):
        with j.step(f"#error-{key} explains the problem"):
            err = page.locator(f"p.field-error#error-{key}")
            expect(err).to_have_text(re.compile(r"\S"))
    with j.step("#form-errors (role=alert) is visible"):
        summary = page.locator("#form-errors")
        expect(summary).to_be_visible()
        expect(summary).to_have_attribute("role", "alert")
        expect(summary).to_have_text(re.compile(r"\S"))
    with j.step("Submit stays disabled"):
        expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    j.no_glitches("invalid form")
    with j.step("fields without a problem show no error"):
        for key in ("namespace", "description", "approvedOrigins", "securityProfiles", "ticket"):
            err = page.locator(f"#error-{key}")
            if err.count() and err.inner_text().strip():
                raise StepFailed(f"#error-{key} is not empty: {err.inner_text()!r}")
    with j.step("at 320 px wide the form and its errors fit without sideways scrolling"):
        page.set_viewport_size({"width": 320, "height": 800})
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 320:
            raise StepFailed(f"the page is {width} px wide at a 320 px viewport")
    with j.step("the keyboard reaches 'Preview plan' from the last field"):
        page.get_by_label("Ticket", exact=True).focus()
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement && document.activeElement.textContent")
        if focused != "Preview plan":
            raise StepFailed(f"Tab from Ticket focuses {focused!r}, not 'Preview plan'")


def rollback(j: Journey) -> None:
    page = j.page
    values = load_example()
    j.open_portal()
    j.go_new()
    j.fill_form(values, namespace="acme-crm-rollback")
    j.preview()
    j.expect_plan()
    j.submit()
    j.wait_saga("ROLLED_BACK")
    with j.step("#saga-error holds the cause and the fix"):
        expect(page.locator("#saga-error")).to_have_text(re.compile(r"\S"))
        # The cause is the injected fault.
        expect(page.locator("#saga-error")).to_contain_text("CreateIntegrationAssociation")
    j.no_glitches("rolled-back timeline")


def day_two(j: Journey) -> None:
    """Pause, resume, edit and offboard from the application page."""
    page = j.page
    values = load_example()
    namespace = effective_namespace(values["Access URL"])
    instance = values["_instances"][1]
    j.open_portal()
    j.go_new()
    j.fill_form(values, namespace=None)
    j.preview()
    j.expect_plan()
    root = j.submit()
    j.wait_saga("SUCCEEDED")

    def app_page() -> None:
        page.evaluate("id => { location.hash = '#/apps/' + id; }", root)
        expect(page).to_have_url(re.compile(r"#/apps/" + re.escape(root) + "$"))
        expect(page.locator("table#app-instances")).to_be_visible()
        expect(page.locator("#app-config")).to_be_visible()
        expect(page.locator("table#app-history")).to_be_visible()
        j.no_glitches("application page")

    def instance_row():
        return page.locator("table#app-instances tr", has_text=instance)

    def day_two_saga(action: str) -> None:
        with j.step(f"the {action} lands on a new saga's timeline"):
            expect(page).to_have_url(SAGA_HASH_RE)
            new = j.saga_id()
            if new == root:
                raise StepFailed(f"the {action} shows the onboard saga {root}, not a new one")
        j.wait_saga("SUCCEEDED")

    with j.step("follow 'Open the application'"):
        link = page.get_by_role("link", name="Open the application")
        expect(link).to_have_attribute("href", re.compile(r"#/apps/" + re.escape(root) + "$"))
        link.click()
        expect(page).to_have_url(re.compile(r"#/apps/" + re.escape(root) + "$"))
    with j.step(f"the instance {instance} is active"):
        expect(instance_row()).to_contain_text("active")
    with j.step(f"click 'Pause on {instance}'"):
        page.get_by_role("button", name=f"Pause on {instance}").click()
    day_two_saga("pause")

    with j.step("back to the application page"):
        app_page()
    with j.step(f"the instance {instance} now says paused"):
        expect(instance_row()).to_contain_text("paused")
    with j.step("the history shows the pause, who asked and what changed"):
        pause_row = page.locator("table#app-history tr", has_text="pause")
        # By the alias the onboarding recorded (demo-support), else by the id.
        expect(pause_row).to_contain_text(re.compile(r"(demo-support|" + re.escape(instance) + r"): paused"))
        expect(pause_row).to_contain_text("SUCCEEDED")
    with j.step(f"click 'Resume on {instance}'"):
        page.get_by_role("button", name=f"Resume on {instance}").click()
    day_two_saga("resume")

    with j.step("back to the application page after the resume"):
        app_page()
    with j.step(f"the instance {instance} is active again"):
        expect(instance_row()).to_contain_text("active")
    renamed = values["Display name"] + " v2"
    with j.step(f"edit the display name to {renamed!r} and click 'Save changes'"):
        page.get_by_label("Display name", exact=True).fill(renamed)
        page.get_by_role("button", name="Save changes").click()
    day_two_saga("edit")
    with j.step("back to the application page after the edit"):
        app_page()
    with j.step(f"the application is now called {renamed!r}"):
        expect(page.get_by_role("heading", level=1)).to_contain_text(renamed)
    with j.step("the history shows the edit's before and after"):
        edit_row = page.locator("table#app-history tr", has_text="edit")
        expect(edit_row).to_contain_text(f"displayName: {values['Display name']} → {renamed}")
    with j.step("click 'Offboard'"):
        page.get_by_role("button", name="Offboard", exact=True).click()
        confirm = page.get_by_label("Type the namespace to confirm")
        expect(confirm).to_be_visible()
        go = page.get_by_role("button", name="Offboard application")
        expect(go).to_be_disabled()
    with j.step("a wrong namespace keeps 'Offboard application' disabled"):
        confirm.fill(namespace + "-not")
        expect(go).to_be_disabled()
    with j.step(f"type the namespace {namespace!r} and click 'Offboard application'"):
        confirm.fill(namespace)
        expect(go).to_be_enabled()
        go.click()
    day_two_saga("offboard")


JOURNEYS = {
    "valid_onboarding": (valid_onboarding, []),
    "invalid_form": (invalid_form, []),
    "rollback": (rollback, ["--inject-fault", "CreateIntegrationAssociation:1"]),
    "day_two": (day_two, []),
}


def run_one(pw, args, name: str) -> tuple[bool, float]:
    fn, extra = JOURNEYS[name]
    out_dir = Path(args.out)
    started = time.monotonic()
    server = Server(args.onboard, name, out_dir, extra)
    browser = None
    journey = None
    ok = False
    try:
        try:
            server.start()
        except Exception as e:
            print(f"FAIL {name}: step 'start onboard serve': {e}", flush=True)
            return False, time.monotonic() - started
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = context.new_page()
        journey = Journey(name, page, server)
        try:
            fn(journey)
            ok = True
        except Exception as e:
            print(f"FAIL {name}: step '{journey.step_name}' failed", flush=True)
            print(f"  error: {type(e).__name__}: {_short(e)}", flush=True)
            if args.verbose:
                traceback.print_exc()
            print(f"  url: {page.url}", flush=True)
            print("  visible text at that moment:", flush=True)
            for line in journey.visible_text().splitlines():
                print(f"    | {line}", flush=True)
            if journey.console:
                print("  browser console / failed requests:", flush=True)
                for line in journey.console[-30:]:
                    print(f"    {line}", flush=True)
            tail = server.stderr_tail(1500).strip()
            if tail:
                print("  server stderr (tail):", flush=True)
                for line in tail.splitlines():
                    print(f"    {line}", flush=True)
        finally:
            try:
                shot = journey.screenshot(out_dir)
                print(f"  screenshot: {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")
            except Exception as e:
                print(f"  (no screenshot: {_short(e)})", flush=True)
    finally:
        if browser is not None:
            browser.close()
        server.stop()
    return ok, time.monotonic() - started


def _short(e: Exception, limit: int = 1500) -> str:
    text = str(e).strip()
    return text if len(text) <= limit else text[:limit] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("journeys", nargs="*", metavar="JOURNEY",
                        help=f"which to run (default: all): {', '.join(JOURNEYS)}")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or "/usr/bin/chromium")
    parser.add_argument("--onboard", default=os.environ.get("ONBOARD_BIN") or str(ROOT / "target/debug/onboard"))
    parser.add_argument("--out", default=str(ROOT / "target" / "browser"))
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    names = args.journeys or list(JOURNEYS)
    for n in names:
        if n not in JOURNEYS:
            parser.error(f"unknown journey {n!r}")

    results = []
    with sync_playwright() as pw:
        for name in names:
            ok, secs = run_one(pw, args, name)
            results.append((name, ok, secs))
            print(f"{'ok  ' if ok else 'FAIL'} {name} ({secs:.1f}s)", flush=True)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    if failed:
        print("failed journeys: " + ", ".join(n for n, ok, _ in results if not ok))
    print(f"browser: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
