# page-icon: :material/group:
"""Users (admins): every user with role and whether a web login is set; add a user; change
a role; set a password. Passwords are hashed with Argon2 (argon2-cffi) in pipelines.auth."""
from __future__ import annotations

import streamlit as st

from app import common
from pipelines import auth, policy

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
st.dataframe([{"name": u.name, "role": u.role, "web login": u.has_password, "created": common.fmt_time(u.created_at)}
              for u in users], hide_index=True, width="stretch")
c1, c2 = st.columns(2)
with c1, st.form("add_user"):
    st.markdown("**Add a user**")
    name = st.text_input("Name")
    r = st.selectbox("Role", auth.ROLES)
    pw = st.text_input("Password (at least 8 characters)", type="password")
    if st.form_submit_button("Add", type="primary"):
        with common.user_errors():
            auth.add_user(ws, user, name.strip(), r, pw or None)
            st.rerun()
with c2, st.form("set_role"):
    st.markdown("**Change a role or password**")
    who = st.selectbox("User", [u.name for u in users])
    new_role = st.selectbox("New role", auth.ROLES)
    new_pw = st.text_input("New password (optional)", type="password")
    if st.form_submit_button("Save"):
        with common.user_errors():
            auth.set_role(ws, user, who, new_role)
            if new_pw:
                auth.set_password(ws, user, who, new_pw)
            st.rerun()
