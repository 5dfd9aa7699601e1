"""Browser tests: headless Debian Chromium driven by Playwright against a live cspdesk server.

Shared by every e2e module (portal and console):

* ``site`` (session): a server on a free 127.0.0.1 port over its own SQLite file and ``VAR_DIR``, loaded with
  the demo world of tests/portal/world.py (two billed months, synced subscriptions, one suspended) and the
  console's additions of tests/e2e/load_world.py (a draft run, a suspension waiting for approval), talking to
  a Partner Center emulator process of its own; gives the base URL, every login and the invoices per customer;
* ``browser`` (session) and ``page`` (per test, its own context: cookies do not leak between tests);
* ``login(page, username)`` logs in through the login form;
* ``screenshot(page, name)`` saves <name>.png under var/screenshots/, or under the folder named by
  ``CSPDESK_SCREENSHOTS`` (``CSPDESK_SCREENSHOTS=docs/screenshots make test`` refreshes the README's images;
  a plain test run leaves the checkout clean).

Playwright's own browser downloads are never used: ``/usr/bin/chromium`` (Debian's package) or nothing.
Without it, or without the playwright package, every e2e test is skipped with the reason (under ``CI=true``
the run stops instead: CI installs Chromium, so the browser tests always run there).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CSPDESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / os.environ.get("CSPDESK_SCREENSHOTS", "var/screenshots")


def _why_not() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install Debian's 'chromium' package; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # the browser tests' servers run on their own SQLite files, whatever DATABASE_URL says
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.once)
    reason = _why_not()
    if reason is None:
        return
    if os.environ.get("CI") == "true":  # CI installs Chromium (.ci/run): there a missing browser fails the tests
        return
    skip = pytest.mark.skip(reason=f"browser tests: {reason}")
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@dataclass
class Site:
    url: str
    logins: dict[str, dict[str, str]]
    invoices: dict[str, list[dict[str, Any]]]
    fewer_licences: str
    console: dict[str, Any]  # tests/e2e/load_world.py: the draft run to review and the suspension waiting
    emulator: str  # the Partner Center emulator the server talks to

    def password(self, username: str) -> str:
        return self.logins[username]["password"]

    def invoice(self, customer: str, period: str | None = None) -> dict[str, Any]:
        rows = sorted(self.invoices[customer], key=lambda r: r["period"])
        return next(r for r in rows if r["period"] == period) if period else rows[-1]

    def api(self, username: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1",
                            headers={"Authorization": f"Bearer {self.logins[username]['token']}"})  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    tmp = Path(tempfile.mkdtemp(prefix="cspdesk-e2e-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"CSPDESK_VAR_DIR": str(tmp), "CSPDESK_ENV": "development", "CSPDESK_DEBUG": "1",
                "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "cspdesk.settings"})  # fmt: skip
    loaded = subprocess.run([sys.executable, "-m", "tests.e2e.load_world"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    if loaded.returncode != 0:
        raise RuntimeError(f"loading the e2e world failed:\n{loaded.stderr[-4000:]}")
    data = json.loads(loaded.stdout.strip().splitlines()[-1])
    # The server talks to a Partner Center emulator of its own and runs background work at once (a suspension
    # approved in the console reaches Partner Center before the page answers).
    emulator_url = f"http://127.0.0.1:{_free_port()}"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "cspdesk", "pc-emulator", "--port", emulator_url.rsplit(":", 1)[1]],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env.update({"PARTNER_CENTER_BASE_URL": emulator_url, "PARTNER_CENTER_AUTHORITY": emulator_url,
                "PARTNER_CENTER_AUTHORITY_USGOV": emulator_url, "PARTNER_CENTER_REFRESH_TOKEN": "test-consent",
                "CSPDESK_TASKS_BACKEND": "django_tasks.backends.immediate.ImmediateBackend"})  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cspdesk", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/accounts/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the e2e server did not start: " + (server.stderr.read().decode()[-2000:]
                                                                       if server.stderr else ""))  # fmt: skip
            time.sleep(0.3)
        while True:
            try:
                if httpx.get(f"{emulator_url}/_emulator/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if emulator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Partner Center emulator did not start")
            time.sleep(0.3)
        yield Site(url, data["logins"], data["invoices"], data["fewer_licences"], data["console"], emulator_url)
    finally:
        for process in (server, emulator):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = _why_not()
    if reason is not None:
        pytest.fail(f"browser tests cannot run under CI=true: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900}, locale="en-IE")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login(site: Site) -> Callable[[Any, str], None]:
    def do(page: Any, username: str) -> None:
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", site.password(username))
        page.click("form.login button[type=submit]")
        page.wait_for_load_state("load")

    return do


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def do(page: Any, name: str, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return do
