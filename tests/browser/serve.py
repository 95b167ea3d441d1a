"""Shared helpers for the browser journeys: one `onboard serve --sandbox` per journey.

The server is started on a free loopback port with a fresh state directory and
`--output json`, so its stdout is one JSON object per line. The helpers read those events
on a thread, wait for `ready`, and give the portal URL: the server's own `portal` event when
it prints one, otherwise `URL/#token=TOKEN&as=local-tester` built from the `listening` and
`token` events. Stopping sends SIGINT (a graceful stop: the running saga reaches its next
recorded write), then kills the process if it has not exited in time.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

DEFAULT_PRINCIPAL = "local-tester"


class ServerError(RuntimeError):
    """The server did not start, or stopped early."""


class Server:
    """One `onboard serve --sandbox` process and the events it printed."""

    def __init__(self, binary: str, name: str, log_dir: Path, extra_args: list[str] | None = None):
        self.binary = binary
        self.name = name
        self.extra_args = list(extra_args or [])
        self.log_dir = log_dir
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"onboard-browser-{name}-"))
        self.stderr_path = log_dir / f"{name}.serve.log"
        self.events: list[dict] = []
        self.raw_lines: list[str] = []
        self._lines: "queue.Queue[dict | None]" = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._reader: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def argv(self) -> list[str]:
        return [
            self.binary,
            "serve",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--output",
            "json",
            "--state-dir",
            str(self.state_dir),
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> "Server":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")
        env = dict(os.environ)
        # Keep the server's own output plain and its tokens our own business.
        env.pop("ONBOARD_SERVE_TOKEN", None)
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.wait_event("ready", timeout)
        # The portal event may follow `ready`; give it a moment before falling back.
        if self.event("portal") is None:
            try:
                self.wait_event("portal", 1.0)
            except ServerError:
                pass
        return self

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.raw_lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._lines.put(event)
        self._lines.put(None)

    def wait_event(self, name: str, timeout: float) -> dict:
        """The first event called `name`, waiting up to `timeout` seconds for it."""
        found = self.event(name)
        if found is not None:
            return found
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerError(
                    f"no {name!r} event within {timeout:.0f}s; stdout so far: {self.raw_lines!r}; "
                    f"stderr: {self.stderr_tail()}"
                )
            try:
                event = self._lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if event is None:
                # stdout closed: the process is gone. Put the marker back for later waits.
                self._lines.put(None)
                raise ServerError(
                    f"the server exited (code {self._proc.poll() if self._proc else None}) "
                    f"before a {name!r} event; stdout: {self.raw_lines!r}; "
                    f"stderr: {self.stderr_tail()}"
                )
            self.events.append(event)
            if event.get("event") == name:
                return event

    def event(self, name: str) -> dict | None:
        # Drain what the reader has queued so far without waiting.
        while True:
            try:
                event = self._lines.get_nowait()
            except queue.Empty:
                break
            if event is None:
                self._lines.put(None)
                break
            self.events.append(event)
        return next((e for e in self.events if e.get("event") == name), None)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGINT, then SIGKILL after `grace` seconds. Returns the exit code."""
        proc = self._proc
        code = None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                    code = proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait(timeout=10)
            else:
                code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return code

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the server told us -----------------------------------------------------------

    @property
    def url(self) -> str:
        event = self.event("listening") or self.event("ready")
        if event is None or not event.get("url"):
            raise ServerError(f"no listening URL among {self.events!r}")
        return str(event["url"]).rstrip("/")

    @property
    def token(self) -> str:
        event = self.event("token")
        if event is None or not event.get("token"):
            raise ServerError(f"no token event among {self.events!r}")
        return str(event["token"])

    @property
    def portal_url(self) -> str:
        """The URL to open: the `portal` event's, or one built from `listening` and `token`."""
        event = self.event("portal")
        if event is not None and event.get("url"):
            return str(event["url"])
        return f"{self.url}/#token={quote(self.token, safe='')}&as={quote(DEFAULT_PRINCIPAL, safe='')}"

    @property
    def portal_event_seen(self) -> bool:
        return self.event("portal") is not None

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            if self._stderr is not None:
                self._stderr.flush()
            text = self.stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return text[-limit:]
