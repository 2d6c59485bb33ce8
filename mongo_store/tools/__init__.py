"""The operator tools the CLI and the dashboard share: queries, paging, health, check and revoke
at Zoho, cleanup, import, metrics and alerts."""
