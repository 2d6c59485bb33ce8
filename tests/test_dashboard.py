"""The dashboard, driven in-process by Streamlit's AppTest against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from conftest import DASHBOARD_PASSWORD
from streamlit.testing.v1 import AppTest
from tokens import full, oauth, secret, values

from mongo_store import MongoTokenStore
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.core.masking import markdown_plain
from mongo_store.dashboard import demo
from mongo_store.dashboard.app import GRID_DEFAULT
from mongo_store.dashboard.compat import CELL_CLICK
from mongo_store.dashboard.plain import plain
from mongo_store.tools import health
from mongo_store.tools.embedded import free_port
from mongo_store.tools.settings import OperatorSettings

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PASSWORD = DASHBOARD_PASSWORD
EU = "https://www.zohoapis.eu"
SHARED_WHO = "Olga Operator (typed name, shared password)"
"""The audit names a shared-password operator by the name typed beside it, marked as such."""


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    st.cache_resource.clear()  # the connection and the counts are cached per process: never across tests
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def store(dashboard_env: MongoTokenStore) -> MongoTokenStore:
    return dashboard_env


def seed(store: MongoTokenStore, count: int = 60) -> list[Any]:
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    tokens = []
    for n in range(count):
        expired = n % 4 == 0
        token = full(f"user{n:02d}@example.com:1", expires_in=str(now_ms + (-60_000 if expired else 1_800_000)),
                     api_domain=EU if n % 5 == 0 else "https://www.zohoapis.com")
        store.save_token(token)
        tokens.append(token)
    store.flush_events(10)  # their history events, written by the store's own thread
    return tokens


def signed_in() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input[0].input("Olga Operator")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    return at


def on_tokens_page(at: AppTest) -> AppTest:
    return at.sidebar.radio(key="page").set_value("Tokens").run()


def rendered_text(at: AppTest) -> str:
    """Every text the app rendered: element protos, and the cells of every table."""
    parts = [frame.value.to_string() for frame in at.dataframe]

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def assert_no_secret(at: AppTest, tokens: list[Any]) -> None:
    text = rendered_text(at)
    for token in tokens:
        for field in SECRET_FIELDS:
            assert values(token)[field] not in text, field


# -- the sign-in gate ------------------------------------------------------------------------


def test_nothing_is_shown_without_sign_in_configured(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = seed(store, 3)
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "Sign-in is not configured" in at.error[0].value and "DASHBOARD_PASSWORD" in at.error[0].value
    assert not at.dataframe and not at.metric
    assert "user00@example.com" not in rendered_text(at)
    assert_no_secret(at, tokens)


def test_a_wrong_password_shows_nothing(store: MongoTokenStore) -> None:
    seed(store, 3)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.metric and not at.dataframe
    at.text_input[0].input("Mallory")
    at.text_input[1].input("guess")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong password."
    assert not at.metric and not at.dataframe and "user00" not in rendered_text(at)


def test_sign_in_then_overview_counts(store: MongoTokenStore) -> None:
    tokens = seed(store, 20)
    at = signed_in()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Tokens"] == "20" and metrics["Idle"] == "5" and metrics["Healthy"] == "15"
    assert metrics["Needs attention"] == "0" and metrics["Failing"] == "0" and metrics["Unusable"] == "0"
    assert metrics["With a user name"] == "20" and not [b for b in at.button if b.key == "show_attention"]
    assert any(c.value.startswith("Counts as of ") for c in at.caption)
    assert "Olga Operator" in rendered_text(at)
    assert_no_secret(at, tokens)


def test_sign_in_can_be_turned_off_with_a_warning(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config

    seed(store, 2)
    monkeypatch.setenv("DASHBOARD_AUTH_DISABLED", "1")
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # as `zoho-mongo-store dashboard` starts it
    try:
        at = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        config.set_option("server.address", before)
    assert "Sign-in is turned off" in at.warning[0].value
    assert {metric.label: metric.value for metric in at.metric}["Tokens"] == "2"


# -- listing, searching, inspecting ----------------------------------------------------------


def test_list_pages_on_the_server(store: MongoTokenStore) -> None:
    tokens = seed(store)
    at = on_tokens_page(signed_in())
    at.selectbox(key="page_size").set_value(25).run()
    assert len(at.dataframe[0].value) == 25 and "page 1 of 3 · 60 tokens" in rendered_text(at)
    assert at.button(key="page_first").disabled and at.button(key="page_previous").disabled
    at.button(key="page_next").click().run()
    assert "page 2 of 3 · 60 tokens" in rendered_text(at) and len(at.dataframe[0].value) == 25
    at.button(key="page_last").click().run()
    assert "page 3 of 3 · 60 tokens" in rendered_text(at)
    assert sorted(at.dataframe[0].value["id"]) == sorted(t.get_id() for t in tokens)[-10:]
    assert at.button(key="page_next").disabled and at.button(key="page_last").disabled
    at.button(key="page_previous").click().run()
    assert "page 2 of 3" in rendered_text(at)
    at.button(key="page_first").click().run()
    assert "page 1 of 3" in rendered_text(at)
    assert not at.exception
    assert_no_secret(at, tokens)


def test_the_last_page_then_a_new_filter_starts_on_page_one(store: MongoTokenStore) -> None:
    seed(store)
    at = on_tokens_page(signed_in())
    at.button(key="page_last").click().run()
    assert not at.exception and "page 2 of 2 · 60 tokens" in rendered_text(at) and len(at.dataframe[0].value) == 10
    at.selectbox(key="health").set_value("idle").run()  # page 2 of 60 tokens; 15 lapsed ones fit on page 1
    assert at.session_state["position"]["number"] == 1 and len(at.dataframe[0].value) == 15
    assert "page 1 of 1 · 15 tokens" in rendered_text(at)


def test_search_and_filters(store: MongoTokenStore) -> None:
    tokens = seed(store)
    at = on_tokens_page(signed_in())
    at.text_input(key="search").input("user1").run()
    assert sorted(at.dataframe[0].value["user_name"]) == [f"user{n}@example.com:1" for n in range(10, 20)]
    at.text_input(key="search").input(tokens[7].get_id()[:10]).run()
    assert list(at.dataframe[0].value["id"]) == [tokens[7].get_id()]
    at.text_input(key="search").input("")
    at.selectbox(key="health").set_value("idle").run()
    assert len(at.dataframe[0].value) == 15
    at.selectbox(key="domain").set_value(EU).run()
    assert set(at.dataframe[0].value["user_name"]) == {f"user{n:02d}@example.com:1" for n in range(0, 60, 20)}
    at.text_input(key="search").input(tokens[0].get_refresh_token()).run()  # a secret finds nothing
    assert not at.dataframe or len(at.dataframe[0].value) == 0


def test_inspect_shows_every_field_masked(store: MongoTokenStore) -> None:
    tokens = seed(store, 3)
    at = on_tokens_page(signed_in())
    at.selectbox(key="inspect").set_value(tokens[1].get_id()).run()
    table = at.table[0].value
    fields = dict(zip(table.index, table["value"], strict=True))
    # The cells are Markdown, so values are escaped (shown as they are stored)
    assert fields["id"] == markdown_plain(tokens[1].get_id()) and fields["user_name"] == markdown_plain("user01@example.com:1")
    assert {fields[f] for f in SECRET_FIELDS} <= {markdown_plain(f"••••{values(tokens[1])[f][-4:]}") for f in SECRET_FIELDS}
    assert fields["health"] == "🟢 healthy" and fields["health means"] == "the access token is valid"
    assert fields["expires_at"].endswith(" min)") and "T" in fields["expires_at"]  # ISO 8601 UTC and relative
    assert "created_at" in fields and "redirect_url" in fields and "last_refreshed_at" in fields
    assert_no_secret(at, tokens)


# -- deleting, each behind a confirmation, and the audit log -----------------------------------


def test_delete_one_asks_first_and_is_audited(store: MongoTokenStore) -> None:
    tokens = seed(store, 5)
    at = on_tokens_page(signed_in())
    victim = tokens[2].get_id()
    at.selectbox(key="inspect").set_value(victim).run()
    at.button(key="delete_one").click().run()
    assert store.find_token_by_id(victim) is not None  # nothing yet: the dialog asks
    at.button(key="cancel_delete").click().run()
    assert store.find_token_by_id(victim) is not None
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()
    assert store.collection.find_one({"_id": victim}) is None and store.collection.count_documents({}) == 4
    assert at.toast[0].value == markdown_plain("Deleted 1 token.")  # a toast renders Markdown: plain text
    at.sidebar.radio(key="page").set_value("Audit").run()
    audit = at.dataframe[0].value
    assert list(audit["who"]) == [f"{SHARED_WHO} (admin)"] and list(audit["tokens"]) == [f"{victim} · user02@example.com:1"]
    assert list(audit["action"]) == ["delete"] and list(audit["outcome"]) == ["deleted 1"]
    assert_no_secret(at, tokens)


def tick(at: AppTest, *ids: str) -> AppTest:
    """Tick these tokens' rows in the grid as the browser shows it (AppTest cannot click a grid):
    the grid's state, by row position, as a tick in its row markers sends it."""
    key, shown, _ = at.session_state["grid_shown"]
    at.session_state[key] = {"selection": {"rows": [shown.index(i) for i in ids], "columns": [], "cells": []}}
    return at.run()


def typed(at: AppTest) -> Any:
    """The name box of the open confirmation (a new widget at every arming)."""
    [box] = [box for box in at.text_input if str(box.key).startswith("typed_name")]
    return box


def dialog_text(at: AppTest) -> str:
    return "\n".join(text.value for text in at.text)


def test_delete_selected_rows(store: MongoTokenStore) -> None:
    tokens = seed(store, 6)
    at = on_tokens_page(signed_in())
    chosen = [tokens[0].get_id(), tokens[4].get_id()]
    tick(at, *chosen)
    assert not at.button(key="delete_selected").disabled
    at.button(key="delete_selected").click().run()
    text = dialog_text(at)  # the confirmation names the people behind the ids, as plain text
    assert f"{chosen[0]} · user00@example.com:1" in text and f"{chosen[1]} · user04@example.com:1" in text
    at.button(key="confirm_delete").click().run()
    assert store.collection.count_documents({"_id": {"$in": chosen}}) == 0
    assert store.collection.count_documents({}) == 4
    [entry] = store.collection.database["dashboard_audit"].find({})
    assert sorted(entry["ids"]) == sorted(chosen) and entry["who"] == SHARED_WHO
    assert sorted(entry["user_names"]) == ["user00@example.com:1", "user04@example.com:1"]
    assert not any(secret in str(entry) for t in tokens for f in SECRET_FIELDS for secret in [values(t)[f]])
    at.run()  # (Streamlit 1.42's AppTest keeps a fragment's last render beside the new one until the next run)
    assert at.session_state["ticked"] == [] and at.button(key="delete_selected").disabled  # cleared after


def test_ticks_stay_with_their_tokens_through_reorders_inserts_and_deletes(store: MongoTokenStore) -> None:
    """Ticks are token ids: after a re-order, an insert before them and a delete of another row,
    "Delete ticked rows" still offers exactly the ticked tokens, by name."""
    tokens = seed(store, 6)
    at = on_tokens_page(signed_in())
    at.selectbox(key="sort").set_value("user").run()
    chosen = [tokens[1].get_id(), tokens[2].get_id()]
    tick(at, *chosen)
    at.toggle(key="descending").set_value(True).run()  # every row moves
    assert at.dataframe[0].value["user_name"].iloc[0] == "user05@example.com:1"
    store.save_token(full("aaa-first@example.com:1"))  # an insert (sorts before them when ascending)
    at.toggle(key="descending").set_value(False).run()
    victim = tokens[0].get_id()
    at.selectbox(key="inspect").set_value(victim).run()
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()  # a delete of another row
    assert store.collection.find_one({"_id": victim}) is None
    assert at.session_state["ticked"] == chosen
    assert "Ticked: 2 tokens: user01@example.com:1, user02@example.com:1" in dialog_text(at)
    _, shown, rows = at.session_state["grid_shown"]
    if GRID_DEFAULT:  # (Streamlit 1.42 has no selection_default: there only the "Ticked:" line names them)
        assert sorted(shown[row] for row in rows) == sorted(chosen)  # the grid shows them ticked where they now are
    at.button(key="delete_selected").click().run()
    text = dialog_text(at)
    assert "Delete 2 tokens" in text and "user01@example.com:1" in text and "user02@example.com:1" in text
    assert "user03" not in text and "aaa-first" not in text
    at.button(key="confirm_delete").click().run()
    assert store.collection.count_documents({"_id": {"$in": chosen}}) == 0 and store.collection.count_documents({}) == 4
    at.run()  # (Streamlit 1.42's AppTest keeps a fragment's last render beside the new one until the next run)
    assert at.session_state["ticked"] == [] and at.button(key="delete_selected").disabled
    assert "Ticked:" not in dialog_text(at)


def test_clear_ticks(store: MongoTokenStore) -> None:
    tokens = seed(store, 3)
    at = on_tokens_page(signed_in())
    tick(at, tokens[1].get_id())
    at.button(key="clear_ticks").click().run()
    assert at.session_state["ticked"] == [] and at.button(key="delete_selected").disabled


def dismiss(at: AppTest) -> AppTest:
    """What × or Esc sends on Streamlit 1.46+: the dialog's dismiss trigger, and nothing else.
    (AppTest has no dialog element: the trigger is added to the widget states by hand.)"""
    found: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and proto.DESCRIPTOR.name == "Block" and proto.WhichOneof("type") == "dialog" \
                and proto.dialog.id:
            found.append(proto.dialog.id)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    assert found, "the dialog reports no dismissal (st.dialog without on_dismiss)"
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id, trigger.trigger_value = found[0], True
    return at._run(states)


def test_a_dismissed_dialog_is_disarmed_with_its_typed_text_cleared(store: MongoTokenStore) -> None:
    from mongo_store.dashboard import app

    tokens = seed(store, 6)
    at = on_tokens_page(signed_in())
    at.button(key="delete_all").click().run()
    typed(at).input(f"{store.collection.database.name}.oauth_tokens").run()
    assert not at.button(key="confirm_delete").disabled
    if app.DIALOG_DISMISS:
        at = dismiss(at)
        assert at.session_state["confirm"] is None and f"typed_name-{at.session_state['armings'] - 1}" not in at.session_state
        assert not [b for b in at.button if b.key == "confirm_delete"]
        at.button(key="delete_all").click().run()
        assert typed(at).value == ""  # nothing typed stays typed
        typed(at).input(f"{store.collection.database.name}.oauth_tokens").run()
    # 1.42-1.45 report no dismissal: the next click outside the dialog disarms it, and it stays closed.
    at.selectbox(key="domain").set_value(EU).run()
    assert not [b for b in at.button if b.key == "confirm_delete"] and at.session_state["confirm"] is None
    assert f"typed_name-{at.session_state['armings'] - 1}" not in at.session_state and store.collection.count_documents({}) == 6
    at.selectbox(key="domain").set_value("any").run()
    at.button(key="delete_all").click().run()
    assert typed(at).value == "" and at.button(key="confirm_delete").disabled
    # The revoke dialog of one token never comes back while another is inspected.
    at.selectbox(key="inspect").set_value(tokens[1].get_id()).run()
    at.button(key="revoke_one").click().run()
    assert tokens[1].get_id() in dialog_text(at)
    at.selectbox(key="inspect").set_value(tokens[2].get_id()).run()
    assert not [b for b in at.button if b.key == "confirm_delete"] and at.session_state["confirm"] is None


def test_delete_all_needs_the_name_and_says_where(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_ENVIRONMENT", "production")
    seed(store, 4)
    indexes = store.collection.index_information()
    at = on_tokens_page(signed_in())
    at.button(key="delete_all").click().run()
    database = store.collection.database.name
    text = dialog_text(at)
    assert "whole collection: all 4 of them" in text
    assert f"database {database}, collection oauth_tokens, environment production" in text
    assert at.button(key="confirm_delete").disabled  # nothing typed yet
    typed(at).input("oauth_tokens").run()  # the bare collection name is not enough
    assert at.button(key="confirm_delete").disabled and store.collection.count_documents({}) == 4
    typed(at).input(f"production/{database}.oauth_tokens").run()
    assert not at.button(key="confirm_delete").disabled
    at.button(key="confirm_delete").click().run()
    assert store.collection.count_documents({}) == 0
    assert store.collection.index_information() == indexes
    entry = store.collection.database["dashboard_audit"].find_one({"action": "delete-all"})
    assert entry["deleted"] == 4 and entry["who"] == SHARED_WHO


def test_delete_all_with_a_filter_deletes_only_the_filtered_set(store: MongoTokenStore) -> None:
    tokens = seed(store, 20)
    at = on_tokens_page(signed_in())
    at.selectbox(key="domain").set_value(EU).run()  # 4 of 20
    at.button(key="delete_all").click().run()
    text = dialog_text(at)
    assert "Delete the 4 tokens that match the filter (data center: EU): revoke 0, delete 4" in text
    assert "Only the filtered set" in text and "environment not named (set DASHBOARD_ENVIRONMENT)" in text
    assert all(f"user{n:02d}@example.com:1" in text for n in (0, 5, 10, 15))
    late = full("late@example.com:1", api_domain=EU)
    store.save_token(late)  # matches after the dialog opened: not what the operator was shown
    typed(at).input(f"{store.collection.database.name}.oauth_tokens").run()
    at.button(key="confirm_delete").click().run()
    assert store.collection.count_documents({}) == 17 and store.find_token_by_id(late.get_id()) is not None
    entry = store.collection.database["dashboard_audit"].find_one({"action": "delete-filtered"})
    assert (entry["deleted"], entry["scope"]) == (4, "data center: EU")
    assert sorted(entry["ids"]) == sorted(t.get_id() for n, t in enumerate(tokens) if n % 5 == 0)


def test_an_error_keeps_cancel_and_renders_as_plain_text(store: MongoTokenStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.core.errors import store_error
    from mongo_store.tools import operations

    seed(store, 2)
    hostile = "the token [click me](http://evil.example) ![x](http://evil.example/x.png) is malformed"

    def refuses(*args: Any, **kwargs: Any) -> int:
        raise store_error(hostile)

    monkeypatch.setattr(operations.Session, "delete", refuses)
    at = on_tokens_page(signed_in())
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()
    assert at.error[0].value == markdown_plain(hostile)  # no link, no remote image
    assert [b for b in at.button if b.key == "cancel_delete"]  # Cancel is still there
    at.button(key="cancel_delete").click().run()
    assert at.session_state["confirm"] is None
    at.run()  # (Streamlit 1.42's AppTest keeps a dialog's last render until the next run)
    assert not [b for b in at.button if b.key == "confirm_delete"]


def test_dashboard_environment_is_parsed_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard.settings import SettingError, Settings

    monkeypatch.setenv("DASHBOARD_ENVIRONMENT", " staging-eu ")
    assert Settings.load().environment == "staging-eu"
    for bad in ("prod uction", "[prod](http://x)", "x" * 41, "-prod"):
        monkeypatch.setenv("DASHBOARD_ENVIRONMENT", bad)
        with pytest.raises(SettingError, match="DASHBOARD_ENVIRONMENT must be") as caught:
            Settings.load()
        assert bad not in str(caught.value)


def test_read_only_mode_makes_everyone_a_viewer_with_every_change_disabled_and_said_why(
        store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store, 3)
    monkeypatch.setenv("DASHBOARD_READ_ONLY", "1")
    at = on_tokens_page(signed_in())
    assert len(at.dataframe[0].value) == 3
    for key in ("delete_one", "delete_all", "check_one", "revoke_one", "check_selected", "revoke_selected",
                "delete_selected"):
        assert at.button(key=key).disabled, key
    assert at.button(key="delete_one").help.startswith("Not for your role: a viewer may not delete tokens")
    assert "Your role (viewer) turns some actions off: a viewer may not check tokens with Zoho" in rendered_text(at)
    assert not at.button(key="export_prepare").disabled  # a viewer reads everything, the export too
    assert at.warning[0].value.startswith("Read-only mode (DASHBOARD_READ_ONLY): nothing can be checked, revoked")
    assert any("Role: **viewer**" in caption.value for caption in at.sidebar.caption)
    at.sidebar.radio(key="page").set_value("Overview").run()  # on every page
    assert at.warning[0].value.startswith("Read-only mode (DASHBOARD_READ_ONLY)")


# -- failures --------------------------------------------------------------------------------


def test_an_unreachable_server_is_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", f"mongodb://127.0.0.1:{free_port()}/?directConnection=true")
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.delenv("ZOHO_DASHBOARD_DEMO", raising=False)
    at = signed_in()
    assert not at.exception
    assert at.error[0].value.startswith(  # the database is named, in plain text
        "The database is unreachable: MongoDB (zoho\\.oauth\\_tokens) did not answer: "
        + markdown_plain("no MongoDB server reachable within 3 s"))
    assert "Reconnecting: next try in" in rendered_text(at)


def test_a_wrong_uri_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://admin:s3cr3tpw@localhost:notaport/")
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    at = signed_in()
    assert not at.exception and "invalid MongoDB URI" in at.error[0].value
    assert "s3cr3tpw" not in rendered_text(at)


def test_bad_credentials_are_a_message(secured_mongod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", secured_mongod.uri("root", "wr0ng-Pa55word"))
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.delenv("ZOHO_DASHBOARD_DEMO", raising=False)
    at = signed_in()
    assert not at.exception
    assert markdown_plain("MongoDB rejected the credentials (AuthenticationFailed)") in at.error[0].value
    assert "wr0ng-Pa55word" not in rendered_text(at)


def test_demo_mode_seeds_mongomock_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongomock://")
    monkeypatch.setenv("ZOHO_DASHBOARD_DEMO", "1")
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    at = signed_in()
    metrics = {metric.label: int(metric.value) for metric in at.metric}
    assert metrics["Tokens"] == 300 and metrics["Grant-only"] > 0 and metrics["Refresh-only (no access token)"] > 0
    assert all(metrics[state] > 0 for state in ("Healthy", "Idle", "Failing", "Unusable"))  # every state shows
    assert "Backend: mongomock (in-memory, not MongoDB) · demo data" in rendered_text(at)


def test_after_an_outage_the_page_says_so_once_and_comes_back_by_itself(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server freezes (SIGSTOP) between two interactions: the page runs into one timeout, not
    one per read; it names the database, not the data centers it was reading; every page shows the
    outage without reading again (the Overview its last counts, with their time); the countdown
    retries with a bounded ping; once the server is back (SIGCONT) the next try brings the page
    back, without a click on anything of the page. Then it dies (SIGKILL): the same, in a sentence."""
    import os
    import signal
    import time

    from mongo_store.dashboard import data, outage
    from mongo_store.tools.embedded import EmbeddedMongod, mongod_binary

    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    server = EmbeddedMongod(tmp_path / "db").start()
    reads: list[str] = []
    real_call = MongoTokenStore.call

    def counted(self: Any, action: str, work: Any, **kwargs: Any) -> Any:
        reads.append(action)
        return real_call(self, action, work, **kwargs)

    monkeypatch.setattr(MongoTokenStore, "call", counted)
    try:
        seed(MongoTokenStore(server.uri), 5)
        for name in ("DASHBOARD_AUTH_DISABLED", "DASHBOARD_READ_ONLY", "ZOHO_DASHBOARD_DEMO"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MONGODB_URI", server.uri)
        monkeypatch.delenv("ZOHO_MONGO_DATABASE", raising=False)
        monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
        monkeypatch.setenv("DASHBOARD_FAILOVER_WAIT", "2")
        at = signed_in()  # the Overview: its counts are kept for an outage
        at = on_tokens_page(at)
        assert not at.exception and len(at.dataframe[0].value) == 5
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        reads.clear()
        started = time.monotonic()
        at.selectbox(key="health").set_value("idle").run()
        took = time.monotonic() - started
        assert not at.exception
        [error] = [e.value for e in at.error]
        assert error.startswith("The database is unreachable: MongoDB (zoho\\.oauth\\_tokens) did not answer: ")
        assert "data centers" not in error and "Reconnecting: next try in" in rendered_text(at)
        assert len(reads) == 1 and took < 2 * 2 + 5, (reads, took)  # one read timed out; nothing read after it
        for page in ("Overview", "Audit", "Lifecycle", "Tokens"):  # no page reads while the server is out
            reads.clear()
            at = at.sidebar.radio(key="page").set_value(page).run()
            assert not at.exception and reads == [] and at.error[0].value == error, page
            if page == "Overview":
                assert {m.label: m.value for m in at.metric}["Healthy"] == "3"
                assert any(c.value.startswith("The last counts, as of ") for c in at.caption)
        # The countdown's try: still out, the ping (bounded, about 3 s) fails and the outage stays.
        at.session_state["outage"]["next"] = 0.0
        started = time.monotonic()
        at.run()
        assert outage.active.__name__ and at.session_state["outage"]["tries"] == 1
        assert time.monotonic() - started < 8
        os.kill(server.process.pid, signal.SIGCONT)
        assert data.ping(at_connection())  # the server answers again
        at.session_state["outage"]["next"] = 0.0  # the countdown reaches zero (the browser reruns it every second)
        at.run()
        assert not at.exception and not at.error and "outage" not in at.session_state
        assert len(at.dataframe[0].value) == 5  # the page is back, with nothing clicked on it
        server.kill()
        at.selectbox(key="health").set_value("healthy").run()
        assert not at.exception and at.error[0].value.startswith("The database is unreachable"), at.error
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def test_an_empty_activity_chart_says_so_instead_of_drawing_an_empty_axis(store: MongoTokenStore) -> None:
    store.save_token(oauth("later@example.com:1", refresh_token=secret("refresh")))  # never refreshed
    at = signed_in()
    assert any(c.value.startswith("No events in the last 7 days") for c in at.caption)


# -- health, sorting, check and revoke ---------------------------------------------------------


def test_needs_attention_is_first_and_one_click_from_its_list(store: MongoTokenStore) -> None:
    tokens = seed(store, 8)
    store.collection.update_one({"_id": tokens[1].get_id()}, {"$set": {"refresh_failures": 2}})
    store.collection.update_one({"_id": tokens[4].get_id()}, {"$unset": {"refresh_token": ""}})  # lapsed, no refresh
    at = signed_in()
    assert at.metric[0].label == "Needs attention" and at.metric[0].value == "2"
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Failing"], metrics["Unusable"], metrics["Healthy"], metrics["Idle"]) == ("1", "1", "5", "1")
    at.button(key="show_attention").click().run()
    assert at.sidebar.radio(key="page").value == "Tokens"
    grid = at.dataframe[0].value
    assert sorted(zip(grid["id"], grid["health"], strict=True)) == sorted(
        [(tokens[1].get_id(), "🟠 failing"), (tokens[4].get_id(), "🔴 unusable")])


def test_the_cli_and_the_dashboard_agree_on_the_counts(store: MongoTokenStore) -> None:
    import json

    from test_cli import run

    from mongo_store.core.clock import utcnow

    demo.seed(store, 120)
    now = utcnow()  # no access token may lapse between the two reads (the demo's shortest live 10 s)
    store.collection.delete_many({"expiry_time": {"$gt": now, "$lt": now + timedelta(minutes=10)}})
    code, out, _ = run("stats", "--json")
    health = json.loads(out)["health"]
    assert code == 0 and all(health.values())
    metrics = {m.label: int(m.value) for m in signed_in().metric}
    assert {state: metrics[state.capitalize()] for state in health} == health
    assert metrics["Needs attention"] == health["failing"] + health["unusable"]


def test_sorting_runs_on_the_server_over_every_page(store: MongoTokenStore) -> None:
    seed(store, 30)
    at = on_tokens_page(signed_in())
    at.selectbox(key="page_size").set_value(25)
    at.selectbox(key="sort").set_value("user")
    at.toggle(key="descending").set_value(True).run()
    assert list(at.dataframe[0].value["user_name"])[:2] == ["user29@example.com:1", "user28@example.com:1"]
    at.button(key="page_next").click().run()
    assert list(at.dataframe[0].value["user_name"]) == [f"user{n:02d}@example.com:1" for n in range(4, -1, -1)]
    assert "a click on a column header orders only the rows on this page" in rendered_text(at)


def test_check_and_revoke_from_the_dashboard(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from fake_zoho import FakeZoho
    from tokens import CLIENT_ID

    client_secret = secret("clientsecret")
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, client_secret) as zoho:
        monkeypatch.setenv("DASHBOARD_ZOHO_ACCOUNTS_URL", f"{zoho.url}/oauth/v2/token")
        token = oauth("zed@example.com:1", client_secret=client_secret, refresh_token=zoho.refresh_token,
                      access_token=zoho.new_access_token(), api_domain=zoho.url, expires_in="4102444800000")
        store.save_token(token)
        at = on_tokens_page(signed_in())
        at.button(key="check_one").click().run()
        assert at.toast[0].value == markdown_plain(f"Check of {token.get_id()}: ok") and zoho.requests == Counter(users=1)
        zoho.refuse_revoke = True
        at.button(key="revoke_one").click().run()
        assert "Zoho stops honouring the revoked tokens' refresh tokens at once" in dialog_text(at)
        assert "revoke 1, delete 1" in dialog_text(at)
        at.button(key="confirm_delete").click().run()
        assert markdown_plain("did not revoke the refresh token; the token is left in the store.") in at.error[0].value
        assert store.collection.count_documents({}) == 1
        zoho.refuse_revoke = False
        at.button(key="confirm_delete").click().run()
        assert at.toast[0].value.startswith(markdown_plain("Revoked at 127.0.0.1:"))
        assert store.collection.count_documents({}) == 0
        assert zoho.requests == Counter(users=1, revoke=2)
        checked, refused, revoked = store.collection.database["dashboard_audit"].find({}).sort("at", 1)
        assert (checked["action"], checked["results"]) == ("check", [f"{token.get_id()}: ok"])
        assert (refused["action"], refused["outcome"], refused["deleted"]) == ("revoke", "not revoked", None)
        assert refused["reason"].endswith("did not revoke the refresh token")
        assert (revoked["action"], revoked["outcome"], revoked["deleted"]) == ("revoke", "revoked and deleted", 1)
        assert revoked["who"] == SHARED_WHO and revoked["user_names"] == ["zed@example.com:1"]


def test_the_delete_confirmation_says_what_a_delete_does_not_do(store: MongoTokenStore) -> None:
    seed(store, 2)
    at = on_tokens_page(signed_in())
    at.button(key="delete_one").click().run()
    text = rendered_text(at)
    assert "Zoho still honours the refresh tokens of the tokens only deleted" in text
    assert "a refresh in flight cannot save it back" in text and "revoke it" in text and "revoke 0, delete 1" in text


# -- issue 20: why at a glance, the view in the URL, paging, bulk actions, banners ----------------


def signed_in_at(params: dict[str, str]) -> AppTest:
    """A fresh browser session opened at a URL with these query parameters, then signed in."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.run()
    at.text_input[0].input("Olga Operator")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    return at


def params(at: AppTest) -> dict[str, str]:
    return {key: value[0] if isinstance(value, list) else value for key, value in at.query_params.items()}


def test_the_url_follows_the_view_and_a_new_session_restores_it(store: MongoTokenStore) -> None:
    seed(store)
    at = on_tokens_page(signed_in())
    at.selectbox(key="health").set_value("healthy")
    at.selectbox(key="domain").set_value("https://www.zohoapis.com")
    at.selectbox(key="sort").set_value("user")
    at.toggle(key="descending").set_value(True)
    at.selectbox(key="page_size").set_value(25).run()
    at.button(key="page_next").click().run()
    assert not at.exception
    url = params(at)
    assert {k: url[k] for k in ("page", "health", "dc", "sort", "desc", "size", "go", "n")} == \
        {"page": "tokens", "health": "healthy", "dc": "US", "sort": "user", "desc": "1", "size": "25", "go": "next",
         "n": "2"}
    assert url["cursor"] and url["token"]
    shown = list(at.dataframe[0].value["id"])
    label = next(text for text in rendered_text(at).splitlines() if "page 2 of" in text)
    again = signed_in_at(url)  # a reload: a new session, signed in again, at the same URL
    assert again.sidebar.radio(key="page").value == "Tokens"
    assert (again.selectbox(key="health").value, again.selectbox(key="domain").value) == \
        ("healthy", "https://www.zohoapis.com")
    assert again.selectbox(key="sort").value == "user" and again.toggle(key="descending").value
    assert list(again.dataframe[0].value["id"]) == shown and label in rendered_text(again)
    assert again.selectbox(key="inspect").value == url["token"]
    assert params(again) == url
    # Every page is in the URL, and a reload opens it. (Leaving a fragment's page is not tried here:
    # Streamlit 1.42's AppTest keeps the fragment's last render and fails on its widgets' old ids.)
    again = signed_in_at({"page": "overview"})
    assert again.sidebar.radio(key="page").value == "Overview" and params(again)["page"] == "overview"
    for page in ("Lifecycle", "Audit"):
        again = again.sidebar.radio(key="page").set_value(page).run()
        assert params(again)["page"] == page.lower()
        assert signed_in_at(params(again)).sidebar.radio(key="page").value == page


def test_a_token_link_opens_that_token_even_off_the_first_page(store: MongoTokenStore) -> None:
    tokens = seed(store, 60)
    last = sorted(t.get_id() for t in tokens)[-1]  # on the last page of the default order
    at = signed_in_at({"token": last})
    assert at.sidebar.radio(key="page").value == "Tokens" and not at.exception
    assert last not in list(at.dataframe[0].value["id"])
    fields = at.table[0].value
    assert fields.loc["id", "value"] == markdown_plain(last) and at.selectbox(key="inspect").value == last
    missing = signed_in_at({"token": "no-such-token-00"})
    assert any(i.value.startswith("No token") and "is stored" in i.value for i in missing.info) and not missing.exception


def test_a_malformed_cursor_in_the_url_shows_the_first_page_with_why(store: MongoTokenStore) -> None:
    seed(store, 5)
    at = signed_in_at({"page": "tokens", "go": "next", "cursor": "not-a-cursor", "n": "7"})
    assert not at.exception and len(at.dataframe[0].value) == 5
    assert "Showing the first page" in at.warning[0].value and "page 1 of 1" in rendered_text(at)


def test_the_grid_says_why_in_a_reason_column_and_names_data_centers_once(store: MongoTokenStore) -> None:
    tokens = seed(store, 5)
    store.collection.update_one({"_id": tokens[1].get_id()}, {"$set": {"refresh_failures": 3}})
    at = on_tokens_page(signed_in())
    grid = at.dataframe[0].value
    why = dict(zip(grid["id"], grid["health_reason"], strict=True))
    assert why[tokens[1].get_id()].startswith("3 failed refresh(es) since the last save")
    assert why[tokens[2].get_id()].startswith("the access token is valid, expires in ")
    assert set(grid["data center"]) == {"EU", "US"}
    at.selectbox(key="inspect").set_value(tokens[0].get_id()).run()
    assert at.table[0].value.loc["api_domain", "value"] == plain("EU (https://www.zohoapis.eu)")  # no link


def failing_mix(store: MongoTokenStore) -> dict[str, list[str]]:
    """Tokens in every category of why, across two data centers."""
    from datetime import timedelta

    from mongo_store.core.clock import utcnow
    from mongo_store.core.mapping import CHECK_ERROR_FIELD, LEASE_FIELD

    tokens = seed(store, 12)
    ids = [t.get_id() for t in tokens]
    now = utcnow()
    store.collection.update_many({"_id": {"$in": ids[1:4]}}, {"$set": {"refresh_failures": 2}})
    store.collection.update_one({"_id": ids[5]}, {"$set": {LEASE_FIELD: now - timedelta(minutes=5)}})
    store.collection.update_one({"_id": ids[7]}, {"$set": {CHECK_ERROR_FIELD: "INVALID_TOKEN"}})
    store.collection.update_one({"_id": ids[8]}, {"$unset": {"refresh_token": ""}})  # lapsed (n % 4 == 0)
    store.save_token(oauth("grant@example.com:1", grant_token=secret("grant")))
    grant = store.collection.find_one({"user_name": "grant@example.com:1"})["_id"]
    store.collection.update_one({"_id": grant}, {"$set": {"updated_at": now - timedelta(days=2)}})
    return {"refresh-failed": ids[1:4], "lease-lapsed": [ids[5]], "check-failed": [ids[7]],
            "no-refresh-token": [ids[8]], "old-grant-token": [grant]}


def test_the_overview_breaks_attention_down_by_reason_and_data_center(store: MongoTokenStore) -> None:
    mix = failing_mix(store)
    at = signed_in()
    metrics = {m.label: int(m.value) for m in at.metric}
    labels = {b.key: b.label for b in at.button}
    assert labels["show_reason_refresh-failed"] == "refresh failed (failing): 3"
    assert labels["show_reason_lease-lapsed"] == "lease lapsed (failing): 1"
    assert labels["show_reason_check-failed"] == "check failed (failing): 1"
    assert labels["show_reason_no-refresh-token"] == "no refresh token (unusable): 1"
    assert labels["show_reason_old-grant-token"] == "old grant token (unusable): 1"
    assert sum(len(v) for v in mix.values()) == metrics["Needs attention"] == 7
    assert labels["show_domain_EU"].startswith("EU: ") and labels["show_domain_US"].startswith("US: ")
    for reason, ids in mix.items():  # each tile: one click to exactly its tokens
        at = at.sidebar.radio(key="page").set_value("Overview").run()
        at.button(key=f"show_reason_{reason}").click().run()
        assert at.sidebar.radio(key="page").value == "Tokens" and not at.exception
        assert sorted(at.dataframe[0].value["id"]) == sorted(ids), reason
        assert params(at)["reason"] == reason
    at = at.sidebar.radio(key="page").set_value("Overview").run()
    eu = int(labels["show_domain_EU"].split(": ")[1].split(" ")[0])
    at.button(key="show_domain_EU").click().run()
    grid = at.dataframe[0].value
    assert len(grid) == eu and set(grid["data center"]) == {"EU"} and set(grid["health"]) <= {"🟠 failing", "🔴 unusable"}


def test_the_breakdown_adds_up_to_failing_and_unusable_on_the_demo_data(store: MongoTokenStore) -> None:
    from mongo_store.core.clock import utcnow
    from mongo_store.tools import health, stats

    demo.seed(store, 400)
    now = utcnow()
    rows = health.breakdown(store.collection, now)
    counts = stats.stats(store.collection, now)["health"]
    for state in ("failing", "unusable"):
        assert sum(r["tokens"] for r in rows if r["health"] == state) == counts[state] > 0
    for reason in health.BY_KEY:  # each category's count is what its own filter lists
        listed = store.collection.count_documents(health.category_filter(reason, now))
        assert listed == sum(r["tokens"] for r in rows if r["reason"] == reason)


def test_the_environment_banner_is_on_every_page_and_in_every_confirmation(store: MongoTokenStore,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_ENVIRONMENT", "production")
    tokens = seed(store, 3)
    at = AppTest.from_file(APP, default_timeout=30).run()  # before sign-in too
    assert at.error[0].value.startswith("Environment: **production**")
    at = signed_in()
    assert at.error[0].value.startswith("Environment: **production**: changes here hit live integrations")
    for page in ("Tokens", "Lifecycle", "Audit"):
        at = at.sidebar.radio(key="page").set_value(page).run()
        assert at.error[0].value.startswith("Environment: **production**"), page
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    for button in ("revoke_one", "delete_one"):
        at.button(key=button).click().run()
        assert "environment production" in dialog_text(at), button
        at.button(key="cancel_delete").click().run()
    tick(at, tokens[0].get_id(), tokens[1].get_id())
    at.button(key="revoke_selected").click().run()
    assert "Revoke these 2 tokens at Zoho" in dialog_text(at) and "environment production" in dialog_text(at)
    monkeypatch.setenv("DASHBOARD_ENVIRONMENT", "staging")
    at = signed_in()
    assert at.info[0].value == "Environment: **staging**" and not at.error


def test_check_and_revoke_the_ticked_rows_against_the_fake_zoho(store: MongoTokenStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_zoho import FakeZoho
    from tokens import CLIENT_ID

    client_secret = secret("clientsecret")
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, client_secret) as zoho:
        monkeypatch.setenv("DASHBOARD_ZOHO_ACCOUNTS_URL", f"{zoho.url}/oauth/v2/token")
        good = oauth("zed@example.com:1", client_secret=client_secret, refresh_token=zoho.refresh_token,
                     access_token=zoho.new_access_token(), api_domain=zoho.url, expires_in="4102444800000")
        stranger = oauth("mia@example.com:1", client_secret=client_secret, refresh_token=secret("unknown"),
                         access_token=secret("access"), api_domain=zoho.url, expires_in="4102444800000")
        store.save_token(good)
        store.save_token(stranger)
        at = on_tokens_page(signed_in())
        tick(at, good.get_id(), stranger.get_id())
        at.button(key="check_selected").click().run()
        assert not at.exception
        summary = at.toast[0].value
        assert summary.startswith(markdown_plain("Checked 2 tokens: 1 ok, 1 not (")), summary
        checks = list(store.collection.database["dashboard_audit"].find({"action": "check"}))
        assert sorted(i for entry in checks for i in entry["ids"]) == sorted([good.get_id(), stranger.get_id()])
        # One run, one entry, as the CLI's `check` writes: each token's answer in it.
        [entry] = checks
        assert f"{good.get_id()}: ok" in entry["results"] and len(entry["results"]) == 2
        assert all(entry["who"] == SHARED_WHO for entry in checks)
        tick(at, good.get_id(), stranger.get_id()) if not at.session_state["ticked"] else None
        at.button(key="revoke_selected").click().run()
        assert "Revoke these 2 tokens at Zoho" in dialog_text(at)
        at.button(key="confirm_delete").click().run()
        assert not at.exception
        assert at.toast[0].value.startswith(markdown_plain("Revoked 2 tokens: ")), at.toast[0].value
        revokes = list(store.collection.database["dashboard_audit"].find({"action": "revoke"}))
        assert len(revokes) == 2 and all(r["who"] == SHARED_WHO for r in revokes)
        outcomes = {r["ids"][0]: r["outcome"] for r in revokes}
        # Zoho no longer knows the stranger's refresh token (invalid_token): already revoked, so
        # deleted too, as cleanup does (the operator layer reads Zoho's answers once for both).
        assert outcomes == {good.get_id(): "revoked and deleted", stranger.get_id(): "already revoked and deleted"}
        assert store.collection.count_documents({}) == 0


def test_select_all_matching_ticks_every_match_on_every_page(store: MongoTokenStore) -> None:
    seed(store, 60)
    at = on_tokens_page(signed_in())
    at.selectbox(key="page_size").set_value(25)
    at.selectbox(key="health").set_value("healthy").run()  # 45 of 60, over two pages
    at.button(key="select_all").click().run()
    assert not at.exception and len(at.session_state["ticked"]) == 45
    assert "Ticked: 45 tokens, 20 of them not on this page" in dialog_text(at)
    at.button(key="delete_selected").click().run()
    text = dialog_text(at)
    assert "Delete 45 tokens" in text and "To confirm, type: " in text  # more than 10: the typed name
    assert at.button(key="confirm_delete").disabled


def test_export_is_every_match_masked(store: MongoTokenStore) -> None:
    import csv
    import io

    tokens = seed(store, 60)
    at = on_tokens_page(signed_in())
    at.selectbox(key="page_size").set_value(25).run()
    at.button(key="export_prepare").click().run()
    assert not at.exception
    button = next(b for b in at.get("download_button"))
    assert button.proto.label == "Download 60 (CSV)"
    from mongo_store.dashboard import bulk, pages_tokens

    state = {key: at.session_state[key] for key in pages_tokens.VIEW_KEYS}  # (1.42's AppTest state has no get)
    text, count = bulk.export_csv(at_connection(), pages_tokens.query_of(state))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == 60 and sorted(r["id"] for r in rows) == sorted(t.get_id() for t in tokens)
    assert {r["data_center"] for r in rows} == {"EU", "US"} and all(r["health_reason"] for r in rows)
    for field in SECRET_FIELDS:
        assert all(values(t)[field] not in text for t in tokens), field
    assert all(r["refresh_token"].startswith("••••") for r in rows)


def at_connection() -> Any:
    from mongo_store.dashboard import cache
    from mongo_store.dashboard.settings import Settings

    return cache.connection(Settings.load())


def test_the_audit_page_searches_by_actor_and_token_and_pages_past_200(store: MongoTokenStore) -> None:

    audit = store.collection.database["dashboard_audit"]
    from mongo_store.core.clock import utcnow

    now = utcnow()
    from datetime import timedelta

    audit.insert_many([{"at": now - timedelta(seconds=n), "who": "ops-bot" if n % 2 else "Olga", "action": "check",
                        "ids": [f"token{n:04d}xxxxxxx"], "results": [f"token{n:04d}xxxxxxx: ok"]} for n in range(260)])
    at = signed_in()
    at = at.sidebar.radio(key="page").set_value("Audit").run()
    assert len(at.dataframe[0].value) == 50 and at.button(key="audit_newer").disabled
    for _ in range(5):
        at.button(key="audit_older").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 10  # entries 251-260: past 200
    assert at.button(key="audit_older").disabled and params(at)["ago"] == "next"
    at.text_input(key="audit_actor").input("OPS").run()
    assert set(at.dataframe[0].value["who"]) == {"ops-bot"} and params(at)["actor"] == "OPS"
    at.text_input(key="audit_token").input("token0003xxxxxxx").run()
    assert list(at.dataframe[0].value["tokens"]) == ["token0003xxxxxxx"]
    assert OperatorSettings.load().audit_collection == "dashboard_audit"


def test_inspect_never_moves_to_another_token_by_itself(store: MongoTokenStore) -> None:
    """The first row is inspected only while none was chosen; a chosen token stays through another
    filter, paging and its own delete (shown off the page, or as no longer stored), until the
    operator chooses another (a row click, a new tick, the box)."""
    seed(store, 8)
    at = on_tokens_page(signed_in())
    first = at.selectbox(key="inspect").value
    assert first == at.dataframe[0].value["id"].iloc[0]
    health = dict(zip(at.dataframe[0].value["id"], at.dataframe[0].value["health"], strict=True))[first]
    at.selectbox(key="health").set_value("idle" if health.endswith("healthy") else "healthy").run()
    listed = list(at.dataframe[0].value["id"])
    assert first not in listed and at.selectbox(key="inspect").value == first
    assert params(at)["token"] == first and at.table[0].value.loc["id", "value"] == markdown_plain(first)
    at.button(key="delete_one").click().run()
    assert "1 of them not in this view" in "".join(w.value for w in at.warning), dialog_text(at)
    assert at.button(key="confirm_delete").disabled
    typed(at).input(f"{store.collection.database.name}.oauth_tokens").run()
    at.button(key="confirm_delete").click().run()
    at.run()
    assert at.selectbox(key="inspect").value == first  # deleted: still this token, said so
    assert any(i.value.startswith(f"No token {markdown_plain(first)} is stored") for i in at.info)
    at.selectbox(key="inspect").set_value(listed[-1]).run()
    assert at.selectbox(key="inspect").value == listed[-1]
    if CELL_CLICK:  # a click on a cell of another row inspects that row (Streamlit with cell selection)
        key, shown, _ = at.session_state["grid_shown"]
        at.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[0, "user_name"]]}}
        at.run()
        assert at.selectbox(key="inspect").value == shown[0] != listed[-1]
        at.run()  # and nothing moves it by itself after that
        assert at.selectbox(key="inspect").value == shown[0]


def test_inspect_shows_the_history_and_the_overview_draws_the_activity_from_it(store: MongoTokenStore) -> None:
    from datetime import timedelta

    from mongo_store.core import events
    from mongo_store.core.clock import utcnow

    tokens = seed(store, 3)
    target = tokens[1].get_id()
    now = utcnow()
    store.collection.database[store.settings.events_collection].insert_many([
        events.entry(target, "user01@example.com:1", "refresh-failed", "Zoho answered invalid_code", "sdk",
                     at=now - timedelta(hours=7)),
        events.entry(target, "user01@example.com:1", "checked", "ok", "ops", at=now - timedelta(hours=1)),
    ])
    at = signed_in()
    assert not any(c.value.startswith("No events in the last 7 days") for c in at.caption)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the activity chart is drawn
    at = on_tokens_page(at)
    at.selectbox(key="inspect").set_value(target).run()
    history = at.table[1].value
    events = ["refreshed", "checked", "refresh-failed"]  # newest first (seed saved it now); cells are Markdown
    assert list(history["event"]) == [markdown_plain(event) for event in events]
    assert list(history["who"])[1:] == ["ops", "sdk"] and markdown_plain("invalid_code") in history["detail"].iloc[2]


def test_the_breakdown_reads_only_the_tokens_that_need_attention(store: MongoTokenStore) -> None:
    """On the real server, explain: no collection scan, and the keys and documents each category
    examines are about its own tokens, not the collection's (400 healthy and lapsed tokens around them)."""
    from mongo_store.core.clock import utcnow
    from mongo_store.core.indexes import ensure_indexes

    ensure_indexes(store.collection)
    seed(store, 400)  # 100 lapsed with a refresh token (idle), 300 healthy
    failing_mix(store)
    now = utcnow()
    narrow = {"hint": "expiry_time_no_refresh_token"}
    for reason in health.BY_KEY:
        first = [{"$match": {"expiry_time": {"$lte": now}, "refresh_token": None}}] if reason == "no-refresh-token" else []
        plan = store.collection.database.command(
            "explain", {"aggregate": store.collection.name, "cursor": {},
                        "pipeline": [*first, {"$match": health.category_filter(reason, now)},
                                     {"$group": {"_id": "$api_domain", "n": {"$sum": 1}}}],
                        **(narrow if first else {})}, verbosity="executionStats")
        text = str(plan)
        assert "COLLSCAN" not in text, reason
        stats = plan["stages"][0]["$cursor"]["executionStats"] if "stages" in plan else plan["executionStats"]
        assert stats["totalDocsExamined"] <= 20, (reason, stats["totalDocsExamined"])


def test_the_demos_sidebar_says_where_check_and_revoke_go(store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store, 3)  # not empty: the demo seeds only an empty collection
    monkeypatch.setenv("ZOHO_DASHBOARD_DEMO", "1")
    monkeypatch.setenv("DASHBOARD_ZOHO_ACCOUNTS_URL", "http://127.0.0.1:9/oauth/v2/token")
    monkeypatch.setenv("DASHBOARD_ZOHO_API_URL", "http://127.0.0.1:9")
    at = signed_in()
    captions = [caption.value for caption in at.sidebar.caption]
    note = "Check and Revoke go to the demo's local fake Zoho at http://127.0.0.1:9: no internet needed."
    assert markdown_plain(note) in captions  # shown as plain text


def test_an_export_never_hands_a_spreadsheet_a_formula(store: MongoTokenStore) -> None:
    import csv
    import io

    from mongo_store.dashboard import bulk
    from mongo_store.tools import queries

    store.save_token(full('=HYPERLINK("https://evil.test","x")@example.com:1'))
    store.save_token(full("plain@example.com:1"))
    text, count = bulk.export_csv(at_connection(), queries.Query())
    names = sorted(row["user_name"] for row in csv.DictReader(io.StringIO(text)))
    assert count == 2 and names == ["'=HYPERLINK(\"https://evil.test\",\"x\")@example.com:1", "plain@example.com:1"]


def test_a_search_the_audit_log_refuses_is_one_sentence_and_stored_text_stays_plain(store: MongoTokenStore) -> None:
    """An over-long search is a warning, not a page that fails; a stored user name and a typed actor
    written as Markdown show as typed in inspect and its history; two spellings of one data center
    are two buttons on the Overview, not a duplicate key."""
    token = full("[click](https://evil.test)@example.com:1", api_domain="https://www.zohoapis.eu")
    store.save_token(token)
    broken = full("b@example.com:1", access_token=None, api_domain="https://www.zohoapis.eu/")
    store.save_token(broken)
    store.collection.update_many({}, {"$set": {"check_error": "INVALID_TOKEN"}})
    at = signed_in()
    assert not at.exception  # the Overview's data-center buttons: "EU" twice, distinct keys
    assert sum(1 for button in at.button if button.label.startswith("EU: ")) == 2
    at = at.sidebar.radio(key="page").set_value("Audit").run()
    at.text_input(key="audit_actor").input("ops\x07bell").run()  # (the box stops at 200 characters)
    assert not at.exception and at.warning
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    at.selectbox(key="inspect").set_value(token.get_id()).run()
    cells = [str(value) for table in at.table for value in table.value.to_numpy().ravel()]
    assert plain("[click](https://evil.test)@example.com:1") in cells  # escaped, and no link


def test_a_secret_in_the_search_box_is_refused_and_kept_out_of_the_url(store: MongoTokenStore) -> None:
    seed(store, 3)
    secret = "1000.0f3c9a1b2c3d4e5f60718293a4b5c6d7.e8f90a1b2c3d4e5f"
    at = on_tokens_page(signed_in())
    at.text_input(key="search").input(secret).run()
    assert not at.exception and "q" not in params(at)
    assert secret not in rendered_text(at) and any("never searchable" in e.value for e in at.error)


# -- issue 31: nothing acted on out of sight, results that stay, readable, the what-if ------------


def test_ticks_made_under_other_filters_are_named_with_their_health_and_need_the_typed_name(
        store: MongoTokenStore) -> None:
    """The measured case: Health=Healthy and one data center, Select all, then other filters, then
    "Delete ticked rows": the dialog names the ticked tokens that are not in this view, with their
    health, and deletes them only once the name is typed."""
    tokens = seed(store, 20)  # EU: n % 5 == 0 (0, 5, 10, 15); healthy: n % 4 != 0 (5, 10, 15)
    at = on_tokens_page(signed_in())
    at.selectbox(key="health").set_value("healthy")
    at.selectbox(key="domain").set_value(EU).run()
    at.button(key="select_all").click().run()
    healthy_eu = sorted(t.get_id() for n, t in enumerate(tokens) if n % 5 == 0 and n % 4)
    assert sorted(at.session_state["ticked"]) == healthy_eu
    at.selectbox(key="health").set_value("idle")
    at.selectbox(key="domain").set_value("any").run()  # none of the ticked ones is in this view
    at.button(key="delete_selected").click().run()
    text = dialog_text(at)
    assert "Delete 3 tokens" in text and "revoke 0, delete 3" in text
    assert all(f"{i} · " in text and "🟢 healthy  ← not in this view" in text for i in healthy_eu)
    assert "3 of them not in this view" in "".join(w.value for w in at.warning)
    assert at.button(key="confirm_delete").disabled and store.collection.count_documents({}) == 20
    typed(at).input(f"{store.collection.database.name}.oauth_tokens").run()
    at.button(key="confirm_delete").click().run()
    assert store.collection.count_documents({"_id": {"$in": healthy_eu}}) == 0 and store.collection.count_documents({}) == 17
    # In the view they were ticked in, a few ticks ask for no typing.
    at.run()
    at.selectbox(key="health").set_value("idle").run()
    at.button(key="select_all").click().run()  # 5 idle tokens, all in view
    at.button(key="delete_selected").click().run()
    assert "not in this view" not in dialog_text(at) and not at.button(key="confirm_delete").disabled
    # One of them deleted meanwhile (another operator): not "ticked under other filters", nor typed.
    gone = sorted(at.session_state["ticked"])[0]
    store.collection.delete_one({"_id": gone})
    at.button(key="delete_selected").click().run()
    assert gone in dialog_text(at) and "not in this view" not in dialog_text(at) and not at.warning
    assert not at.button(key="confirm_delete").disabled


def test_delete_all_is_off_with_no_match_and_every_result_stays_in_a_panel_until_dismissed(
        store: MongoTokenStore) -> None:
    tokens = seed(store, 6)
    at = on_tokens_page(signed_in())
    at.text_input(key="search").input("nobody-matches").run()
    assert at.button(key="delete_all").disabled and at.button(key="delete_all").help == "Nothing matches: nothing to delete."
    at.text_input(key="search").input("").run()
    tick(at, tokens[1].get_id(), tokens[2].get_id())
    at.button(key="delete_selected").click().run()
    at.button(key="confirm_delete").click().run()
    at.run()
    for _ in range(3):  # still there after other clicks, unlike a toast
        at.selectbox(key="sort").set_value("user").run()
    tables = [table.value for table in at.table]
    panel = next(table for table in tables if "result" in table.columns)
    assert sorted(panel["token"]) == sorted(markdown_plain(t.get_id()) for t in tokens[1:3])
    assert set(panel["result"]) == {"deleted"} and any("Deleted 2 tokens" in m.value for m in at.markdown)
    at.button(key="dismiss_results").click().run()
    assert not [b for b in at.button if b.key == "dismiss_results"]


def test_an_empty_result_names_the_search_and_every_filter(store: MongoTokenStore) -> None:
    store.save_token(full("wayne@wayne.example:1"))  # healthy
    at = on_tokens_page(signed_in())
    at.text_input(key="search").input("wayne")
    at.selectbox(key="health").set_value("unusable").run()
    [info] = [i.value for i in at.info if "no token" in i.value.lower()]
    assert "the search 'wayne'" in info and "health unusable" in info and "clear a filter" in info


def test_the_data_centers_are_in_order_and_the_export_is_named_for_where_and_when(
        store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard import pages_tokens
    from mongo_store.dashboard.settings import Settings

    for n, domain in enumerate(("https://www.zohoapis.jp", EU, "https://www.zohoapis.com", "https://www.zohoapis.com.au")):
        store.save_token(full(f"u{n}@example.com:1", api_domain=domain))
    monkeypatch.setenv("DASHBOARD_ENVIRONMENT", "staging")
    at = on_tokens_page(signed_in())
    assert [pages_tokens.datacenters.name(d) for d in at.selectbox(key="domain").options[1:]] == ["AU", "EU", "JP", "US"] \
        or at.selectbox(key="domain").options[1:] == ["AU", "EU", "JP", "US"]
    from datetime import datetime as moment

    assert pages_tokens.export_name(Settings.load(), moment(2026, 12, 7, 14, 30)) == "tokens-staging-2026-12-07-1430.csv"
    at.button(key="export_prepare").click().run()
    button = next(b for b in at.get("download_button"))
    assert button.proto.label == "Download 4 (CSV)"


def test_the_lifecycle_page_previews_a_typed_policy_and_applies_nothing(store: MongoTokenStore) -> None:
    from datetime import timedelta

    from mongo_store.core.clock import utcnow

    seed(store, 6)
    store.collection.update_many({}, {"$set": {"last_refreshed_at": utcnow() - timedelta(days=40)}})
    at = signed_in().sidebar.radio(key="page").set_value("Lifecycle").run()
    assert any("No rule is set" in i.value and "what-if preview" in i.value for i in at.info)
    at.number_input(key="whatif_idle").set_value(30).run()
    said = " ".join(m.value for m in at.markdown)
    assert "What if (revoke and delete tokens idle for more than 30 days)" in said and "6 to revoke and delete" in said
    assert len(at.dataframe[0].value) == 6
    at.number_input(key="whatif_idle").set_value(1).run()
    assert "more than 1 day)" in " ".join(m.value for m in at.markdown)  # "1 day", not "1 days"
    assert store.collection.count_documents({}) == 6 and store.collection.database["dashboard_audit"].count_documents({}) == 0
    assert not [b for b in at.button if b.key == "apply_policy"]


def test_apply_names_revokes_and_deletes_and_asks_the_typed_name_for_many(
        store: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from mongo_store.core.clock import utcnow

    seed(store, 14)
    store.collection.update_many({}, {"$set": {"last_refreshed_at": utcnow() - timedelta(days=40)}})
    store.collection.update_many({"user_name": {"$in": ["user00@example.com:1", "user01@example.com:1"]}},
                                 {"$unset": {"refresh_token": ""}, "$set": {"expiry_time": utcnow() - timedelta(days=40)}})
    monkeypatch.setenv("ZOHO_CLEANUP_IDLE_DAYS", "30")
    monkeypatch.setenv("ZOHO_CLEANUP_UNUSABLE_DAYS", "30")
    at = signed_in().sidebar.radio(key="page").set_value("Lifecycle").run()
    at.button(key="apply_policy").click().run()
    text = dialog_text(at)
    assert "to 14 tokens: revoke at Zoho and delete 12, delete only 2" in text
    assert "Zoho stops honouring the revoked tokens' refresh tokens" in text and "Zoho still honours the refresh " \
        "tokens of the tokens only deleted" in text
    assert at.button(key="confirm_delete").disabled  # more than 10: the typed name


def test_the_audit_page_filters_by_action_and_dates_shows_a_whole_entry_and_exports_csv(store: MongoTokenStore) -> None:
    from datetime import timedelta

    from mongo_store.core.clock import utcnow

    audit = store.collection.database["dashboard_audit"]
    now = utcnow()
    audit.insert_many([
        {"at": now - timedelta(days=3), "who": "olga", "role": "admin", "action": "revoke", "ids": ["tok-a"],
         "user_names": ["a@example.com:1"], "outcome": "not revoked",
         "reason": "accounts.zoho.eu did not revoke the refresh token (HTTP 500) see https://evil.test", "deleted": None},
        {"at": now - timedelta(days=1), "who": "ivan", "role": "operator", "action": "delete", "ids": ["tok-b"],
         "user_names": [], "deleted": 1},
        {"at": now, "who": "cron (cli)", "action": "cleanup", "ids": ["tok-c", "tok-d"], "outcome": "2 tokens acted on"},
    ])
    at = signed_in().sidebar.radio(key="page").set_value("Audit").run()
    assert len(at.dataframe[0].value) == 3
    at.selectbox(key="audit_action").set_value("revoke").run()
    grid = at.dataframe[0].value
    assert list(grid["action"]) == ["revoke"] and list(grid["who"]) == ["olga (admin)"]
    assert list(grid["token"]) == ["?page=tokens&token=tok-a"] and params(at)["action"] == "revoke"
    assert "did not revoke the refresh token (HTTP 500)" in grid["outcome"].iloc[0]  # the reason is in the row
    key = "audit_grid-1-None"  # (the grid of this page: one entry, the newest page)
    at.session_state[key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    whole = at.table[0].value
    assert whole.loc["reason", "value"] == plain(
        "accounts.zoho.eu did not revoke the refresh token (HTTP 500) see https://evil.test")  # whole, and no link
    at.selectbox(key="audit_action").set_value("any")
    at.date_input(key="audit_from").set_value((now - timedelta(days=2)).date())
    at.date_input(key="audit_to").set_value((now - timedelta(days=1)).date()).run()
    assert list(at.dataframe[0].value["action"]) == ["delete"]
    at.date_input(key="audit_to").set_value(None).run()
    assert list(at.dataframe[0].value["action"]) == ["cleanup", "delete"]
    at.button(key="audit_export_prepare").click().run()
    button = next(b for b in at.get("download_button"))
    assert button.proto.label == "Download 2 (CSV)"
