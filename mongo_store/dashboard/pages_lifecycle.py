"""The Lifecycle page: the cleanup policy, what it would do now, and a button to apply it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from . import data, urlstate
from .auth import Operator
from .compat import STRETCH
from .confirm import arm, confirm_dialog, disarm_unless_touched
from .settings import Settings


def lifecycle_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    """The lifecycle policy (the same settings ``zoho-mongo-store cleanup`` applies from cron), what
    it would do now, and a button to apply it."""
    disarm_unless_touched()
    urlstate.write({"page": "lifecycle"})
    st.title("Lifecycle policy")
    policy = settings.policy
    st.text(f"Policy: {policy.describe()}.\nAudit entries are kept {settings.audit_retention_days:g} days "
            "(ZOHO_AUDIT_RETENTION_DAYS).")
    st.caption("Set ZOHO_CLEANUP_IDLE_DAYS (a session timeout: revoke at Zoho, then delete, tokens not refreshed "
               "for that long) and ZOHO_CLEANUP_UNUSABLE_DAYS (delete tokens nothing can renew) for the dashboard "
               "and for `zoho-mongo-store cleanup` alike. Each token is checked again when it is acted on: one "
               "refreshed meanwhile is left alone.")
    if not policy:
        st.info("No rule is set: nothing is cleaned up.")
        return
    report = data.cleanup_plan(conn, policy)
    if not report.entries:
        st.success("Nothing to do now: no token is outside the policy's limits.")
        return
    summary = report.summary(dry_run=True)
    st.subheader(f"Preview: {summary['revoke+delete']} to revoke and delete, {summary['delete']} to delete")
    st.dataframe(pd.DataFrame([{"id": e.id, "user_name": e.user_name, "action": e.action, "reason": e.reason}
                               for e in report.entries]), hide_index=True, **STRETCH)
    if settings.read_only:
        return
    st.button("Apply the policy now…", key="apply_policy", type="primary", on_click=arm,
              args=({"kind": "cleanup", "ids": [e.id for e in report.entries], "summary": summary},))
    if st.session_state.get("confirm"):
        confirm_dialog(conn, settings, operator)


