"""The script ``streamlit run`` executes for ``zoho-mongo-store dashboard`` and ``demo``."""

from mongo_store.dashboard.app import main

main()
