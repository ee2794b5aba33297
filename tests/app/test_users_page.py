"""The Users page and the sign-in form through AppTest: "Change a role or password" starts at
the picked user's role (a password-only save keeps it), Add and Save say what they did, both
forms forget the typed password, and the sign-in password field asks the browser for the
saved password (autocomplete "current-password")."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines import auth
from tests.app.pages import ENTRY, button, open_page

PAGE = "pages/11_Users.py"
TIMEOUT_S = 120
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


@pytest.fixture
def ws(tmp_workspace) -> Path:
    auth.add_user(tmp_workspace, None, "admin", "admin")  # first user: added as the local admin
    auth.add_user(tmp_workspace, "admin", "ann", "annotator")
    auth.add_user(tmp_workspace, "admin", "cora", "curator")
    return tmp_workspace


def _page(ws: Path, user: str = "admin") -> AppTest:
    return open_page(ws, PAGE, user, timeout_s=TIMEOUT_S)




def _new_role(at: AppTest):
    return next(s for s in at.selectbox if s.label == "New role")


def _roles(ws: Path) -> dict[str, tuple[str, bool]]:
    return {u.name: (u.role, u.has_password) for u in auth.list_users(ws, "admin")}


def test_password_only_save_keeps_the_role(ws):
    at = _page(ws)
    at.selectbox(key="users_pick").select("cora").run()
    assert _new_role(at).value == "curator"          # the picked user's role, not "annotator"
    at.text_input(key="users_new_password").input("cora-password-1")
    button(at, "Save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _roles(ws)["cora"] == ("curator", True)
    assert auth.authenticate(ws, "cora", "cora-password-1") == ("cora", "curator")
    assert [s.value for s in at.success] == ["Saved cora: new password set."]
    assert at.text_input(key="users_new_password").value == ""   # the typed password is gone
    forms = at.get("form")
    assert len(forms) == 2 and all(f.proto.form.clear_on_submit for f in forms)   # in the browser: any submit
    button(at, "Save").click().run()                  # nothing typed: the old password is not sent again
    assert any("Nothing to save" in i.value for i in at.info) and not at.success
    # another user: the picker follows that user's role
    at.selectbox(key="users_pick").select("ann").run()
    assert _new_role(at).value == "annotator"
    assert not at.success                              # the message was for the save only


def test_role_change_says_so_and_the_picker_shows_the_new_role(ws):
    at = _page(ws)
    at.selectbox(key="users_pick").select("ann").run()
    _new_role(at).select("adjudicator")
    button(at, "Save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _roles(ws)["ann"] == ("adjudicator", False)   # no password typed: none set
    assert [s.value for s in at.success] == ["Saved ann: role annotator → adjudicator."]
    assert _new_role(at).value == "adjudicator"


def test_save_without_changes_and_a_short_password(ws):
    at = _page(ws)
    at.selectbox(key="users_pick").select("cora").run()
    button(at, "Save").click().run()
    assert any("Nothing to save" in i.value for i in at.info)
    assert _roles(ws)["cora"] == ("curator", False)
    _new_role(at).select("admin")
    at.text_input(key="users_new_password").input("short")
    button(at, "Save").click().run()
    assert any("at least 8 characters" in e.value for e in at.error)
    assert _roles(ws)["cora"] == ("curator", False)     # checked before the role changed


def test_add_says_so_and_clears_the_form(ws):
    at = _page(ws)
    at.text_input(key="users_add_name").input("eve")
    at.selectbox(key="users_add_role").select("curator")
    at.text_input(key="users_add_password").input("eve-password-1")
    button(at, "Add").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _roles(ws)["eve"] == ("curator", True)
    assert [s.value for s in at.success] == ["Added eve (curator), with a web login."]
    assert at.text_input(key="users_add_password").value == ""
    assert at.text_input(key="users_add_name").value == ""
    assert "eve" in at.selectbox(key="users_pick").options
    at.text_input(key="users_add_name").input("cli-only")
    button(at, "Add").click().run()
    assert [s.value for s in at.success] == ["Added cli-only (annotator), without a web login (CLI only)."]


def test_password_inputs_autocomplete(ws):
    at = _page(ws)
    assert at.text_input(key="users_add_password").proto.autocomplete == "new-password"
    assert at.text_input(key="users_new_password").proto.autocomplete == "new-password"
    auth.set_password(ws, "admin", "ann", "ann-password-1")
    login = AppTest.from_file(ENTRY, default_timeout=TIMEOUT_S)
    login.session_state["workspace"] = str(ws)
    login.run()
    assert not login.exception
    assert login.text_input(key="login_password").proto.autocomplete == "current-password"
    assert login.text_input(key="login_name").proto.autocomplete == "username"
    login.text_input(key="login_name").input("ann")
    login.text_input(key="login_password").input("ann-password-1")
    button(login, "Sign in").click().run()
    assert login.session_state["user"] == "ann"
