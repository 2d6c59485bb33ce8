"""Every destructive action waits here for a confirmation that names what it hits: the tokens by
id, user name and health, how many each step hits (revoke N, delete M), the database, the
collection and the environment (``DASHBOARD_ENVIRONMENT``). A token ticked under other filters (not
in the view shown) is named as such, and acting on it, or on more than ``TYPED_ABOVE`` tokens, or
on every token, needs the typed name.

A confirmation is armed in Session State by a callback and drawn as a dialog; a dismissed one is
disarmed and forgets what was typed, so no later click brings it back."""

from __future__ import annotations

from typing import Any

import streamlit as st
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core.errors import sentence
from ..core.masking import markdown_plain, printable
from ..tools.operations import NotAllowed, refusal
from ..tools.words import plural
from ..tools.zoho import ZohoError
from . import cache, data, results
from .auth import Operator
from .compat import DIALOG_DISMISS
from .plain import MISSING
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


TYPED_ABOVE = 10
"""A destructive action on more tokens than this asks for the typed name (as "Delete all" always
does, and any action on a token ticked outside the view shown)."""
DELETE_TRUTH = ("A deleted token is gone for good: a refresh in flight cannot save it back, and its person must "
                "log in again. This cannot be undone.")
DELETE_ONLY = "Zoho still honours the refresh tokens of the tokens only deleted: to end a connection at Zoho, revoke it."
REVOKED = "Zoho stops honouring the revoked tokens' refresh tokens at once: each integration stops until its user " \
    "grants access again."
HEALTH_MARK = {"healthy": "🟢", "idle": "⚪", "failing": "🟠", "unusable": "🔴"}
"""The health colours (beside the word, never instead of it): the grid, Inspect and every confirmation."""


def health_label(state: str) -> str:
    return f"{HEALTH_MARK.get(state, '')} {state}".strip()


def listed(ids: list[str], found: dict[str, tuple[str | None, str]], limit: int = LISTED,
           outside: set[str] | None = None) -> str:
    """The chosen tokens, one a line, by id, user name and health, those outside the view marked
    (plain text: ``st.text``)."""
    outside = outside or set()
    lines = []
    for token_id in ids[:limit]:
        if token_id in found:
            name, state = found[token_id]
            line = f"{printable(token_id)} · {printable(name or MISSING)} · {health_label(state)}"
        else:
            line = f"{printable(token_id)} · (no longer stored)"
        lines.append(line + ("  ← not in this view" if token_id in outside else ""))
    return "\n".join(lines + ([f"… and {len(ids) - limit} more"] if len(ids) > limit else []))


def dialog(title: str) -> Any:
    """``st.dialog`` that disarms when dismissed, where Streamlit reports a dismissal (1.46+)."""
    return st.dialog(title, on_dismiss=disarm) if DIALOG_DISMISS else st.dialog(title)


def counts(acts: dict[str, int]) -> str:
    """``revoke 3, delete 3``: what the action does, by kind, with its count."""
    return ", ".join(f"{verb} {count}" for verb, count in acts.items())


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
    needs_typed, ready = kind == "all", True
    try:
        if kind == "cleanup":
            chosen = request["ids"]
            revoking = sum(action == "revoke+delete" for action in request["actions"].values())
            acts = {"revoke at Zoho and delete": revoking, "delete only": len(chosen) - revoking}
            found = data.described(conn, chosen[:FILTERED_LISTED])
            st.text(f"Apply the lifecycle policy ({settings.policy.describe()}) to {plural(len(chosen), 'token')}: "
                    f"{counts(acts)} (as of the preview; each is checked again when it is acted on).\n{place}\n"
                    f"{listed(chosen, found, FILTERED_LISTED)}\n\n" + " ".join(
                        [REVOKED] * bool(revoking) + [DELETE_ONLY] * bool(len(chosen) - revoking) + [DELETE_TRUTH]))
            needs_typed = len(chosen) > TYPED_ABOVE
        elif kind in ("revoke", "ids"):
            chosen = request["ids"]
            found = data.described(conn, chosen)
            view = request.get("view")
            # Ticked under other filters: still stored, not in this view (one deleted meanwhile is
            # neither: the list says it is gone).
            outside = set(found) - data.in_view(conn, view, chosen) if view is not None else set()
            n = len(chosen)
            if kind == "revoke":
                st.text(f"Revoke {'this token' if n == 1 else f'these {n} tokens'} at Zoho, then delete "
                        f"{'it' if n == 1 else 'them'}: {counts({'revoke': n, 'delete': n})}.\n{place}\n"
                        f"{listed(chosen, found, outside=outside)}\n\n{REVOKED} {DELETE_TRUTH}")
            else:
                st.text(f"Delete {plural(n, 'token')} from {where}: {counts({'revoke': 0, 'delete': n})}.\n{place}\n"
                        f"{listed(chosen, found, outside=outside)}\n\n{DELETE_ONLY} {DELETE_TRUTH}")
            if outside:
                st.warning(f"{len(outside)} of them not in this view: ticked under other filters, they are not on "
                           "the list you see now (marked ← above, with their health). Type the name below to act on "
                           "them too, or cancel and clear the ticks.")
            needs_typed = n > TYPED_ABOVE or bool(outside)
        else:
            if request["query"] is not None and "ids" not in request:
                request["ids"] = data.matching_ids(conn, request["query"])  # read once: what is shown is deleted
            if request["query"] is not None:
                chosen = request["ids"]
                found = data.described(conn, chosen[:FILTERED_LISTED])
                st.text(f"Delete the {plural(len(chosen), 'token')} that match the filter ({request['scope']}): "
                        f"{counts({'revoke': 0, 'delete': len(chosen)})}. Only the filtered set: tokens that do not "
                        f"match stay. To delete the whole collection, clear the filters.\n{place}\n"
                        f"{listed(chosen, found, FILTERED_LISTED)}\n\n{DELETE_ONLY} {DELETE_TRUTH}")
            else:
                st.text(f"Delete every token in the whole collection: all {data.token_count(conn):,} of them (no "
                        f"filter is set)?\n{place}\n\n{DELETE_ONLY} {DELETE_TRUTH}")
        if needs_typed:
            st.text(f"To confirm, type: {expected}")  # plain text; the box's label stays plain words
            typed = st.text_input("Type the name above to confirm (then press Enter)", key=typed_key(),
                                  on_change=touched)
            ready = typed == expected
    except SDKException as error:
        st.error(markdown_plain(sentence(error)))
        ready = False
    refused = refusal(operator.role, ACTION_OF[kind] if kind != "all" or request.get("query") is None
                      else "delete-filtered")
    if refused:
        st.error(f"You cannot do this: {refused}.")
    confirm, cancel = st.columns(2)
    go = confirm.button({"revoke": "Revoke", "cleanup": "Apply"}.get(kind, "Delete"), type="primary", key="confirm_delete",
                        disabled=not ready or bool(refused), on_click=touched)
    if cancel.button("Cancel", key="cancel_delete", on_click=touched):
        disarm()
        st.rerun()
    if not go:
        return
    chosen = request.get("ids") or []
    if needs_typed and typed != expected:
        st.error("The typed name does not match; nothing was done.")
        return
    who, role = operator.who, operator.role
    names = {token_id: found_name for token_id, (found_name, _) in data.described(conn, chosen).items()} if chosen else {}
    try:
        if kind == "cleanup":
            report = data.cleanup_run(conn, settings.policy, who, role, chosen)
            said = report.summary(dry_run=False)
            done = "Cleanup: " + ", ".join(f"{count} {name}" for name, count in said.items())
            results.record(done, [(entry.id, entry.user_name, entry.result) for entry in report.entries] +
                           [(token_id, names.get(token_id), "not acted on: it no longer qualifies, or is gone")
                            for token_id in chosen if token_id not in {entry.id for entry in report.entries}])
            chosen = [entry.id for entry in report.entries]
        elif kind == "revoke" and len(chosen) == 1:  # Zoho's refusal stays in the dialog, beside Cancel
            host = data.revoke(conn, chosen[0], who, role)
            done = f"Revoked at {host} and deleted {chosen[0]}."
            results.record(done, [(chosen[0], names.get(chosen[0]), f"revoked at {host} and deleted")])
        elif kind == "revoke":
            outcome = data.revoke_many(conn, chosen, who, role)
            done = outcome.summary() + " (each revoked one is deleted; a refused one stays stored)."
            results.record(outcome.summary(), [(token_id, names.get(token_id), "revoked and deleted" if result == "revoked"
                                                else f"not revoked: {result}; left in the store")
                                               for token_id, result in outcome.results.items()])
            chosen = outcome.done
        elif kind == "ids":
            deleted = data.delete(conn, chosen, who, role)
            done = f"Deleted {plural(deleted, 'token')}."
            results.record(done, [(token_id, names.get(token_id), "deleted" if token_id in names
                                   else "not found: already deleted") for token_id in chosen])
        elif request["query"] is not None:
            deleted = data.delete_matching(conn, chosen, who, role, typed or "", expected, request["scope"])
            done = f"Deleted {plural(deleted, 'token')} that matched the filter ({request['scope']})."
            results.record(done, [(token_id, names.get(token_id), "deleted" if token_id in names
                                   else "not found: already deleted") for token_id in chosen])
        else:
            done = f"Deleted {plural(data.delete_all(conn, who, role, typed or '', expected), 'token')}: the whole collection."
            results.record(done, [])
    except NotAllowed as error:
        st.error(f"You cannot do this: {markdown_plain(error)}.")
        return
    except ZohoError as error:  # the buttons stay: Cancel is still there after an error
        st.error(markdown_plain(f"{error}; the token is left in the store."))  # it may quote a stored value
        results.record(f"Not revoked: {chosen[0]}", [(chosen[0], names.get(chosen[0]),
                                                      f"not revoked: {error}; left in the store")])
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


ACTION_OF = {"cleanup": "cleanup", "revoke": "revoke", "ids": "delete", "all": "delete-all"}
"""The operator layer's action (``operations.NEEDS``) behind each confirmation."""
