"""Entry point for ``streamlit run dashboard/app.py``; the app lives in ``mongo_store.dashboard``."""

from mongo_store.dashboard.app import main

main()
