"""The operators' Streamlit dashboard: ``streamlit run dashboard/app.py`` or ``zoho-mongo-store dashboard``."""
