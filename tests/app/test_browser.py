"""The real app in a real browser: ``streamlit run app/Workbench.py`` as a subprocess on a
free 127.0.0.1 port, driven by Debian's Chromium through Playwright's sync API.

Needs ``/usr/bin/chromium`` (``make browser``); skipped with that reason when it is absent.
The server's output goes to ``test-artifacts/streamlit_server.log`` (a file, never an
undrained pipe), the screenshot to ``test-artifacts/datasets_page.png``, and the server is
terminated whatever happens.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.test_datasets_page import build_workspace

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (make browser)"),
]
START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 60_000  # 2 CPU cores: a 50-sample page takes a few seconds to paint


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not answer on {url} in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    """Yield the base URL of a running app over a fresh workspace; always stop it."""
    ws = build_workspace(tmp_path / "ws", n_instruction=60)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "streamlit_server.log"
    port = _free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "Workbench.py"),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
           "--server.fileWatcherType", "none", "--", "--workspace", str(ws)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _settled(page) -> None:
    """Wait until Streamlit has finished the current run (its status widget is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=UI_TIMEOUT_MS)


def _open(browser, server: str, nav: str, height: int = 1100):
    """A new 1440 px wide tab on the app's root, then ``nav`` clicked in the sidebar as a user
    does. (A deep link as the very first request to a fresh server makes Streamlit show a
    spurious "Page not found" dialog over the right page: streamlit/streamlit#9992.)"""
    from playwright.sync_api import expect
    page = browser.new_page(viewport={"width": 1440, "height": height})
    page.goto(server)
    expect(page.get_by_role("heading", name="Instruction Workbench")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=nav).click()
    return page


def test_datasets_page_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = _open(browser, server, "Datasets")
            expect(page.get_by_text("Instruction number 1 (edited)")).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("You are terse.")).to_be_visible()
            expect(page.get_by_text("Page 1 · samples 1–50 of 60").first).to_be_visible()
            assert page.get_by_text("Page not found").count() == 0
            _settled(page)
            # Widgets load their code lazily; wait until they are drawn, not placeholders.
            expect(page.get_by_role("button", name="Next").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.locator('[data-testid="stSelectbox"]').nth(1)).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.locator('[data-testid="stCheckbox"]').first).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.wait_for_timeout(1000)  # let the data grids and fonts paint
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "datasets_page.png"))

            page.get_by_role("button", name="Next").first.click()
            expect(page.get_by_text("Page 2 · samples 51–60 of 60").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("A brand new instruction")).to_be_visible(timeout=UI_TIMEOUT_MS)
        finally:
            browser.close()


def test_templates_page_in_chromium(server):
    """The Templates page in a real browser: role-coloured render, token chips, custom editor."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = _open(browser, server, "Templates", height=1500)
            expect(page.locator(".wb-rendered")).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.locator(".wb-rendered .wb-user").first).to_contain_text("Instruction number 1 (edited)")
            expect(page.locator(".wb-rendered .wb-system").first).to_contain_text("You are terse.")
            expect(page.locator(".wb-tokens .wb-learned").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            assert page.locator(".wb-tokens .wb-tok").count() > page.locator(".wb-tokens .wb-learned").count() > 0
            assert page.get_by_text("Page not found").count() == 0
            _settled(page)
            expect(page.locator('[data-testid="stMetric"]').nth(3)).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.wait_for_timeout(1000)  # let fonts and chips paint
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "templates_page.png"), full_page=True)
        finally:
            browser.close()


def test_chat_page_in_chromium(server):
    """The Chat page in a real browser: a message typed into the chat input gets the embedded
    model's answer, shown as a user turn and an assistant turn with its token count."""
    from playwright.sync_api import expect, sync_playwright

    from datastore.errors import WorkbenchError
    try:
        from pipelines.models import ensure_base_model
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = _open(browser, server, "Chat")
            expect(page.get_by_role("heading", name="Chat")).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("no adapter").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            box = page.locator('[data-testid="stChatInputTextArea"]')
            box.fill("What is the capital of France?")
            box.press("Enter")
            expect(page.locator('[data-testid="stChatMessage"]')).to_have_count(2, timeout=180_000)
            expect(page.locator('[data-testid="stChatMessage"]').first).to_contain_text("capital of France")
            expect(page.get_by_text("tokens in").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            answer = page.locator('[data-testid="stChatMessage"]').nth(1).inner_text()
            assert answer.strip() and "tokens in" in answer
            assert page.locator('[data-testid="stException"]').count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "chat_page.png"))
        finally:
            browser.close()
