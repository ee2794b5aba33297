# page-icon: :material/group:
"""Users (admins): every user with role and whether a web login is set; add a user; change
a role; set a password. Passwords are hashed with Argon2 (argon2-cffi) in pipelines.auth.

Both forms clear on submit, so a typed password never stays in the browser (and after a
successful save the rerun also empties the fields' session state); the outcome of a save is
shown after that rerun as a one-time success message (``FLASH_KEY``). The role picker of
"Change a role or password" starts at the picked user's current role, so saving only a new
password never changes the role."""
from __future__ import annotations

import streamlit as st

from app import common
from datastore import WorkbenchError
from pipelines import auth, policy

FLASH_KEY = "users_flash"

ws = common.workspace()
common.require_workspace(ws)
user = common.current_user()
st.title("Users")
with common.user_errors(stop=True):
    role = common.current_role()
if not policy.can(role, "manage_users"):
    st.info("Only admins manage users.", icon=":material/lock:")
    st.stop()
with common.user_errors(stop=True):
    users = auth.list_users(ws, user)
flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    message, clear = flash
    st.success(message, icon=":material/check:")
    for key in clear:  # before the widgets exist in this run, so setting their value is allowed
        st.session_state[key] = ""
st.dataframe([{"name": u.name, "role": u.role, "web login": u.has_password, "created": common.fmt_time(u.created_at)}
              for u in users], hide_index=True, width="stretch")
roles = {u.name: u.role for u in users}
c1, c2 = st.columns(2)
with c1, st.form("add_user", clear_on_submit=True):
    st.markdown("**Add a user**")
    name = st.text_input("Name", key="users_add_name")
    r = st.selectbox("Role", auth.ROLES, key="users_add_role")
    pw = st.text_input("Password (at least 8 characters)", type="password", key="users_add_password",
                       autocomplete="new-password")
    if st.form_submit_button("Add", type="primary"):
        with common.user_errors():
            added = auth.add_user(ws, user, name.strip(), r, pw or None)
            st.session_state[FLASH_KEY] = (f"Added {added.name} ({added.role}), "
                                           + ("with a web login." if pw else "without a web login (CLI only)."),
                                           ("users_add_name", "users_add_password"))
            st.rerun()
with c2, st.container(border=True):
    st.markdown("**Change a role or password**")
    who = st.selectbox("User", list(roles), key="users_pick")
    current = roles.get(who, auth.ROLES[0])
    with st.form("set_role", clear_on_submit=True, border=False):
        # keyed by user and current role: picking another user (or a saved role change) starts
        # the picker at that user's role instead of keeping the previous choice
        new_role = st.selectbox("New role", auth.ROLES, index=list(auth.ROLES).index(current),
                                key=f"users_role_{who}_{current}")
        new_pw = st.text_input("New password (optional)", type="password", key="users_new_password",
                               autocomplete="new-password")
        if st.form_submit_button("Save"):
            with common.user_errors():
                if who is None:
                    raise WorkbenchError("pick a user first")
                if new_pw and len(new_pw) < auth.MIN_PASSWORD_CHARS:  # checked before anything changes
                    raise WorkbenchError(f"a password needs at least {auth.MIN_PASSWORD_CHARS} characters")
                done = []
                if new_role != current:
                    auth.set_role(ws, user, who, new_role)
                    done.append(f"role {current} → {new_role}")
                if new_pw:
                    auth.set_password(ws, user, who, new_pw)
                    done.append("new password set")
                if not done:
                    st.info("Nothing to save: pick another role or type a new password.", icon=":material/info:")
                else:
                    st.session_state[FLASH_KEY] = (f"Saved {who}: {', '.join(done)}.", ("users_new_password",))
                    st.rerun()
