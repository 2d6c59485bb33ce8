"""Watching the tokens: ``metrics`` (the Prometheus exporter) and ``alerts`` (one webhook pass)."""

from __future__ import annotations

import argparse
from typing import Any

from ..command import Context, Failure, arg, command, operator_settings
from ..types import interval, listen, webhook_url

WEBHOOK_ENV = "ZOHO_MONGO_ALERT_WEBHOOK"
ALERTS_COLLECTION_ENV = "ZOHO_MONGO_ALERTS_COLLECTION"


def webhook(args: argparse.Namespace, required: bool) -> Any:
    """The webhook from --webhook, else the settings (a URL kept off the command line, where ``ps``
    shows it); checked as strictly as the option."""
    from ...tools.alerts import Webhook

    url = args.webhook or operator_settings().alert_webhook
    if not url:
        if required:
            raise Failure(f"no webhook: pass --webhook URL or set {WEBHOOK_ENV}")
        return None
    try:
        return Webhook(webhook_url(url))
    except argparse.ArgumentTypeError as error:
        raise Failure(f"{WEBHOOK_ENV} {error}") from None


def alert_state(ctx: Context) -> Any:
    from ...tools.alerts import alert_state as state

    try:
        return state(ctx.store.collection, operator_settings().alerts_collection)
    except Exception as error:  # InvalidName
        raise Failure(f"{ALERTS_COLLECTION_ENV}: {error}") from None


@command("metrics", help="serve Prometheus metrics (/metrics) and /health, counting in the background; with "
         "--webhook, alert every interval too", arguments=[
             arg("--listen", type=listen, default=("127.0.0.1", 9464), metavar="HOST:PORT",
                 help="address to serve on (default 127.0.0.1:9464: this machine only; 0.0.0.0:9464 for all)"),
             arg("--interval", type=interval, default=60.0, help="seconds between counts (default 60)"),
             arg("--webhook", type=webhook_url, help="POST alerts and recoveries here every interval "
                 "(default: $ZOHO_MONGO_ALERT_WEBHOOK, if set)"),
         ])
def metrics(ctx: Context) -> int:
    """Serve until Ctrl-C or SIGTERM; counting (and alerting) run in threads of their own, so a
    slow webhook never delays the counts and no scrape waits for either."""
    import sys
    import threading

    from ...core.errors import sentence
    from ...tools import metrics as exporting
    from ...tools.alerts import run_pass
    from ..processes import stopped_by_signals

    store, args, out = ctx.store, ctx.args, ctx.out
    hook, state = webhook(args, required=False), alert_state(ctx)
    exporter = exporting.Exporter(lambda: store.call("count the tokens", lambda: exporting.count(store.collection)),
                                args.interval, alerting=hook is not None)
    host, port = args.listen
    try:
        httpd = exporting.server(host, port, exporter)
    except OSError as error:
        raise Failure(f"cannot listen on {host}:{port}: {error.strerror or error}") from None

    def alert() -> None:
        try:
            report = store.call("make the alert pass", lambda: run_pass(store.collection, state, hook))
        except Exception as error:
            print(f"zoho-mongo-store: the alert pass failed: {' '.join(sentence(error).split())}", file=sys.stderr, flush=True)
            return
        with exporter.lock:
            exporter.undelivered = report.undelivered
        if report.baseline is not None or report.alerted or report.recovered or report.undelivered or report.skipped:
            print(f"alerts: {report.summary()}", file=out, flush=True)

    stop = threading.Event()
    workers = [threading.Thread(target=exporting.every, args=(args.interval, stop, exporter.refresh), daemon=True)]
    if hook is not None:
        workers.append(threading.Thread(target=exporting.every, args=(args.interval, stop, alert), daemon=True))
    shown = f"[{host}]" if ":" in host else host
    print(f"serving http://{shown}:{httpd.server_port}/metrics and /health, counting every {args.interval:g} s"
          + (f", alerting {hook.origin}" if hook else ""), file=out, flush=True)
    with stopped_by_signals():
        try:
            for worker in workers:
                worker.start()
            httpd.serve_forever(poll_interval=0.5)
        finally:
            stop.set()
            httpd.server_close()
            for worker in workers:
                worker.join(timeout=5)
    return 0


@command("alerts", help="one alert pass: POST each token that turned failing or unusable, and each recovery, to a "
         "webhook (for cron)", arguments=[
             arg("--webhook", type=webhook_url, help="where to POST (default: $ZOHO_MONGO_ALERT_WEBHOOK)")])
def alerts(ctx: Context) -> int:
    from ...tools.alerts import run_pass

    store = ctx.store
    hook, state = webhook(ctx.args, required=True), alert_state(ctx)
    report = store.call("make the alert pass", lambda: run_pass(store.collection, state, hook))
    if report.undelivered:
        raise Failure(report.summary())
    print(report.summary(), file=ctx.out)
    return 0
