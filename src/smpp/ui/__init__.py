"""What the Airflow UI plugin shows: plain readers of run and model artifacts, and their HTML.

Nothing here imports Airflow; `plugins/smpp_ui.py` adds authentication and the DAG-run lookup.
"""
