"""Airflow 3 REST API (v2) adapter: ``AirflowClient`` over apache-airflow-client, imported lazily."""
