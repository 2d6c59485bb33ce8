"""The Lifecycle page: the cleanup policy, what it would do now, a button to apply it, and a
what-if preview of any other policy (days typed here; nothing is applied)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ..tools.cleanup import Policy, Report
from ..tools.operations import refusal
from ..tools.words import plural
from . import data, urlstate
from .auth import Operator
from .compat import STRETCH
from .confirm import arm, confirm_dialog, disarm_unless_touched
from .plain import MISSING
from .settings import Settings


def lifecycle_page(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    """The lifecycle policy (the same settings ``zoho-mongo-store cleanup`` applies from cron), what
    it would do now, a button to apply it (admins), and the what-if preview."""
    disarm_unless_touched()
    urlstate.write({"page": "lifecycle"})
    st.title("Lifecycle policy")
    policy = settings.policy
    st.text(f"Policy: {policy.describe()}.\nAudit entries are kept {plural(settings.audit_retention_days, 'day')} "
            "(ZOHO_AUDIT_RETENTION_DAYS).")
    st.caption("Set ZOHO_CLEANUP_IDLE_DAYS (a session timeout: revoke at Zoho, then delete, tokens not refreshed "
               "for that long) and ZOHO_CLEANUP_UNUSABLE_DAYS (delete tokens nothing can renew) for the dashboard "
               "and for `zoho-mongo-store cleanup` alike. Each token is checked again when it is acted on: one "
               "refreshed meanwhile is left alone.")
    if not policy:
        st.info("No rule is set: nothing is cleaned up. Try one in the what-if preview below: it shows what a "
                "policy would do now, and applies nothing.")
    else:
        report = data.cleanup_plan(conn, policy)
        if not report.entries:
            st.success("Nothing to do now: no token is outside the policy's limits.")
        else:
            summary = report.summary(dry_run=True)
            st.subheader(f"Preview: {summary['revoke+delete']} to revoke and delete, {summary['delete']} to delete")
            preview_table(report)
            refused = refusal(operator.role, "cleanup")
            st.button("Apply the policy now…", key="apply_policy", type="primary", on_click=arm,
                      disabled=bool(refused), help=f"Not for your role: {refused}." if refused else None,
                      args=({"kind": "cleanup", "ids": [e.id for e in report.entries],
                             "actions": {e.id: e.action for e in report.entries}, "summary": summary},))
            if refused:
                st.caption(f"Your role ({operator.role}) cannot apply it: {refused}.")
            if st.session_state.get("confirm"):
                confirm_dialog(conn, settings, operator)
    what_if(conn)


def preview_table(report: Report) -> None:
    st.dataframe(pd.DataFrame([{"id": e.id, "user_name": e.user_name or MISSING, "action": e.action, "reason": e.reason}
                               for e in report.entries]), hide_index=True, **STRETCH)


def what_if(conn: data.Connection) -> None:
    """Days typed here, previewed against the tokens now (reads only: no Zoho call, no audit entry,
    nothing applied; to apply a policy, set it and use the button above or `cleanup`)."""
    st.subheader("What if: preview another policy")
    st.caption("Type the days of a policy to see which tokens it would revoke and delete now. Nothing is applied "
               "from here.")
    idle_box, unusable_box, _ = st.columns([1, 1, 2])
    idle = idle_box.number_input("Idle for more than (days)", min_value=0.0, max_value=36_600.0, value=0.0, step=1.0,
                                 key="whatif_idle", help="0: no idle rule")
    unusable = unusable_box.number_input("Unusable for more than (days)", min_value=0.0, max_value=36_600.0,
                                         value=0.0, step=1.0, key="whatif_unusable", help="0: no unusable rule")
    trial = Policy(idle or None, unusable or None)
    if not trial:
        st.caption("Type a number of days above for a preview.")
        return
    report = data.cleanup_plan(conn, trial)
    summary: dict[str, Any] = report.summary(dry_run=True)
    st.markdown(f"**What if ({trial.describe()})**: {summary['revoke+delete']} to revoke and delete, "
                f"{summary['delete']} to delete, now. Nothing applied.")
    if report.entries:
        preview_table(report)
