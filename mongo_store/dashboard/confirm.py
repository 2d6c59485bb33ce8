"""Every destructive action waits here for a confirmation that names what it hits: the tokens by
id and user name, the database, the collection and the environment (``DASHBOARD_ENVIRONMENT``).

A confirmation is armed in Session State by a callback and drawn as a dialog; a dismissed one is
disarmed and forgets what was typed, so no later click brings it back."""

from __future__ import annotations

from typing import Any

import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.errors import sentence
from ..core.masking import markdown_plain, printable
from ..tools.zoho import ZohoError
from . import cache, data
from .auth import Operator
from .compat import DIALOG_DISMISS
from .settings import Settings

LISTED = 50
"""How many chosen tokens a confirmation lists by name before "and N more"."""
FILTERED_LISTED = 10
"""The same for a filtered "Delete all" (a sample: its count and filter say what it deletes)."""


def set_ticks(ticked: list[str]) -> None:
    """Ticks changed outside the grid (cleared, all matches, or their tokens deleted): a new grid shows them."""
    st.session_state["ticked"] = ticked
    st.session_state["tick_generation"] = st.session_state.get("tick_generation", 0) + 1
    st.session_state.pop("grid_shown", None)


def disarm_unless_touched() -> None:
    """A rerun no dialog control asked for, with a confirmation armed: the dialog was closed (×
    or Esc, which Streamlit 1.42-1.45 do not report) and stays closed."""
    if not st.session_state.pop("dialog_touched", False) and st.session_state.get("confirm"):
        disarm()


def touched() -> None:
    """A dialog control was used: the rerun it starts keeps the dialog armed."""
    st.session_state["dialog_touched"] = True


def disarm() -> None:
    """Nothing stays armed and nothing typed stays typed: a dismissed dialog never comes back on an
    unrelated click (``on_dismiss``, and the next rerun no dialog control asked for)."""
    st.session_state["confirm"] = None
    st.session_state.pop(typed_key(), None)
    st.session_state["armings"] = st.session_state.get("armings", 0) + 1  # the next dialog's box is a new one


def typed_key() -> str:
    """The key of the name box of the dialog armed now: new at every arming, so a browser never
    brings back what was typed into an earlier dialog's box (nested in a fragment, it keeps it)."""
    return f"typed_name-{st.session_state.get('armings', 0)}"


def arm(request: dict[str, Any]) -> None:
    """Open a confirmation (a callback, so the dialog is opened through session state: a dialog
    opened inside ``if st.button(...)`` loses its own clicks on the next rerun)."""
    disarm()
    st.session_state["confirm"] = request
    touched()


DELETE_TRUTH = ("This deletes the stored tokens for good: a refresh in flight cannot save them back, and their "
                "people must log in again. Zoho still honours their refresh tokens: to end a connection at Zoho, "
                "revoke it. This cannot be undone.")


def listed(ids: list[str], names: dict[str, str | None], limit: int = LISTED) -> str:
    """The chosen tokens, one a line, by id and user name (plain text: ``st.text``)."""
    lines = [f"{printable(i)} · " + (printable(names[i] or "(no user name)") if i in names else "(no longer stored)")
             for i in ids[:limit]]
    return "\n".join(lines + ([f"… and {len(ids) - limit} more"] if len(ids) > limit else []))


def dialog(title: str) -> Any:
    """``st.dialog`` that disarms when dismissed, where Streamlit reports a dismissal (1.46+)."""
    return st.dialog(title, on_dismiss=disarm) if DIALOG_DISMISS else st.dialog(title)


@dialog("Confirm")
def confirm_dialog(conn: data.Connection, settings: Settings, operator: Operator) -> None:
    st.session_state.pop("dialog_touched", None)  # this dialog's own rerun consumed it
    request: dict[str, Any] | None = st.session_state.get("confirm")
    if not request:
        st.rerun()  # disarmed meanwhile: close
        return
    kind, where = request["kind"], f"{conn.tokens.database.name}.{conn.tokens.name}"
    place = f"database {conn.tokens.database.name}, collection {conn.tokens.name}, environment " + \
        (settings.environment or "not named (set DASHBOARD_ENVIRONMENT)")
    expected, typed = data.confirm_name(conn, settings.environment), None
    ready = True
    try:
        if kind == "cleanup":
            summary = request["summary"]
            names = data.user_names(conn, request["ids"][:FILTERED_LISTED])
            st.text(f"Apply the lifecycle policy ({settings.policy.describe()})? As of the preview it revokes at "
                    f"Zoho and deletes {summary['revoke+delete']} token(s), and deletes {summary['delete']} "
                    f"token(s); each is checked again when it is acted on.\n{place}\n"
                    f"{listed(request['ids'], names, FILTERED_LISTED)}\n\n{DELETE_TRUTH}")
        elif kind == "revoke":
            names = data.user_names(conn, request["ids"])
            these = "this token" if len(request["ids"]) == 1 else f"these {len(request['ids'])} tokens"
            st.text(f"Revoke {these} at Zoho, then delete {'it' if len(request['ids']) == 1 else 'them'}?\n{place}\n"
                    f"{listed(request['ids'], names)}\n\nZoho stops honouring "
                    f"{'its refresh token' if len(request['ids']) == 1 else 'their refresh tokens'} at once: the "
                    "integration stops until its user grants access again.")
        elif kind == "ids":
            names = data.user_names(conn, request["ids"])
            st.text(f"Delete {len(request['ids'])} token(s) from {where}?\n{place}\n{listed(request['ids'], names)}\n\n"
                    + DELETE_TRUTH)
        else:
            if request["query"] is not None and "ids" not in request:
                request["ids"] = data.matching_ids(conn, request["query"])  # read once: what is shown is deleted
            if request["query"] is not None:
                names = data.user_names(conn, request["ids"][:FILTERED_LISTED])
                st.text(f"Delete the {len(request['ids'])} token(s) that match the filter ({request['scope']})? "
                        f"Only the filtered set: tokens that do not match stay. To delete the whole collection, "
                        f"clear the filters.\n{place}\n{listed(request['ids'], names, FILTERED_LISTED)}\n\n{DELETE_TRUTH}")
            else:
                st.text(f"Delete every token in the whole collection: all {data.token_count(conn)} of them (no "
                        f"filter is set)?\n{place}\n\n{DELETE_TRUTH}")
            typed = st.text_input(f"Type {markdown_plain(expected)} to confirm (then press Enter)", key=typed_key(),
                                  on_change=touched)  # a label is Markdown: the names shown as they are
            ready = typed == expected
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        ready = False
    confirm, cancel = st.columns(2)
    go = confirm.button({"revoke": "Revoke", "cleanup": "Apply"}.get(kind, "Delete"), type="primary", key="confirm_delete",
                        disabled=not ready, on_click=touched)
    if cancel.button("Cancel", key="cancel_delete", on_click=touched):
        disarm()
        st.rerun()
    if not go:
        return
    chosen: list[str] = request.get("ids") or []
    try:
        if kind == "cleanup":
            report = data.cleanup_run(conn, settings.policy, operator.who, chosen)
            done = "Cleanup: " + ", ".join(f"{count} {name}" for name, count in report.summary(dry_run=False).items())
        elif kind == "revoke" and len(chosen) == 1:
            host = data.revoke(conn, chosen[0], operator.who)
            done = f"Revoked at {host} and deleted {chosen[0]}."
        elif kind == "revoke":
            outcome = data.revoke_many(conn, chosen, operator.who)
            done = outcome.summary() + " (each revoked one is deleted; a refused one stays stored)."
            chosen = outcome.done
        elif kind == "ids":
            done = f"Deleted {data.delete(conn, chosen, operator.who)} token(s)."
        elif request["query"] is not None:
            deleted = data.delete_matching(conn, chosen, operator.who, typed or "", expected, request["scope"])
            done = f"Deleted {deleted} token(s) that matched the filter."
        else:
            done = f"Deleted {data.delete_all(conn, operator.who, typed or '', expected)} token(s)."
    except ZohoError as error:  # the buttons stay: Cancel is still there after an error
        st.error(markdown_plain(f"{error}; the token is left in the store."))  # it may quote a stored value
        return
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        return
    cache.recount()
    everything = kind == "all" and request["query"] is None
    set_ticks([] if everything else [i for i in st.session_state.get("ticked", []) if i not in chosen])
    disarm()
    st.session_state["flash"] = (done, "✅")
    st.rerun()


