"""Review, adjudication and agreement in a real browser (Debian's Chromium through Playwright, headless):
annotator ann signs in and annotates two samples with the keyboard; bob disagrees on one;
the adjudicator resolves it; the agreement page shows the new figures. A screenshot of each
step goes to test-artifacts/review_*.png."""
from __future__ import annotations

import pytest

from pipelines import auth
from pipelines.review import adjudicate, annotate, tasks
from tests.app.test_browser import ARTIFACTS, CHROMIUM, UI_TIMEOUT_MS, _settled
from tests.pipelines.review.helpers import add_dataset, add_users

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium (make browser)")]
PW = "browser-pass-1"


@pytest.fixture
def review_server(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from tests.app.test_browser import REPO, _wait_healthy
    ws = tmp_path / "ws"
    ws.mkdir()
    add_users(ws, {"admin": "admin", "cora": "curator", "dora": "adjudicator", "ann": "annotator", "bob": "annotator"})
    for u in ("ann", "dora"):
        auth.set_password(ws, "admin", u, PW)
    add_dataset(ws, "qa", n=2)
    tasks.open_task(ws, "cora", name="web", dataset="qa", pool=["ann", "bob"], guidelines="Check the facts.")
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "streamlit_review_server.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "Workbench.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
           "--", "--workspace", str(ws)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, log)
        yield url, ws
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _login(page, url, name):
    from playwright.sync_api import expect
    page.goto(url)
    expect(page.get_by_text("Sign in").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PW)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible(timeout=UI_TIMEOUT_MS)


def test_annotate_disagree_adjudicate_agreement(review_server):
    from playwright.sync_api import expect, sync_playwright
    url, ws = review_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            _login(page, url, "ann")
            page.screenshot(path=str(ARTIFACTS / "review_1_signed_in.png"))
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Review", exact=True).click()
            expect(page.get_by_text("Check the facts.")).to_be_visible(timeout=UI_TIMEOUT_MS)
            for n in (1, 2):
                _settled(page)
                expect(page.get_by_text(f"{n - 1} of 2 done").first).to_be_visible(timeout=UI_TIMEOUT_MS)
                # st.button(shortcut=...) binds through hotkeys-js, which ignores key presses
                # whose target is an input, textarea or select (streamlit 1.67 frontend): take
                # the focus out of any form field before using the keyboard
                page.evaluate("document.activeElement && document.activeElement.blur()")
                page.keyboard.press("4")                                    # rate 4
                _settled(page)
                shown = annotate.next_item(ws, "ann", "web")
                for _ in range(100):   # the rating autosaves as a draft; wait for it before accepting
                    if (annotate.open_item(ws, "ann", "web", shown.sample.sample_id).draft or {}).get("rating") == 4:
                        break
                    page.wait_for_timeout(400)
                page.keyboard.press("a")                                    # accept and submit
                expect(page.get_by_text("Saved sample").first).to_be_visible(timeout=UI_TIMEOUT_MS)
                page.screenshot(path=str(ARTIFACTS / f"review_2_annotated_{n}.png"))
            mine = annotate.my_annotations(ws, "ann", "web")
            assert sorted((m["decision"], m["rating"]) for m in mine) == [("accept", 4), ("accept", 4)]
            # bob (through the same services) agrees on sample 1, disagrees on sample 2
            annotate.submit(ws, "bob", "web", 1, {"decision": "accept", "rating": 4}, submit_id="bob-1")
            annotate.submit(ws, "bob", "web", 2, {"decision": "reject", "rating": 1}, submit_id="bob-2")
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            _login(page, url, "dora")
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Adjudication", exact=True).click()
            expect(page.get_by_role("button", name="Pick this answer").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            _settled(page)
            page.screenshot(path=str(ARTIFACTS / "review_3_adjudication_queue.png"), full_page=True)
            page.get_by_role("button", name="Pick this answer").first.click()
            expect(page.get_by_text("Nothing to adjudicate")).to_be_visible(timeout=UI_TIMEOUT_MS)
            assert adjudicate.adjudication_queue(ws, "dora", "web") == []
            page.screenshot(path=str(ARTIFACTS / "review_4_adjudicated.png"), full_page=True)
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Agreement", exact=True).click()
            expect(page.get_by_text("Cohen's kappa per annotator pair")).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("Krippendorff's α (decision)")).to_be_visible(timeout=UI_TIMEOUT_MS)
            # worked out by hand: items 1 (accept, accept) and 2 (accept, reject): Krippendorff's
            # alpha (nominal) = 1 - (n-1) * 2 / (2 * n_accept * n_reject) = 1 - 3 * 2 / 6 = 0;
            # Fleiss' kappa: P = (1 + 0) / 2, P_e = (3/4)^2 + (1/4)^2 = 5/8 -> (1/2 - 5/8) / (3/8) = -1/3
            expect(page.get_by_text("0.000").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("-0.333").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            _settled(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "review_5_agreement.png"), full_page=True)
        finally:
            browser.close()
