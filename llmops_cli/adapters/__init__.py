"""Adapters for the outside world (embedders, vector stores, LLMs, Airflow) behind small interfaces.

Each adapter imports its heavy library lazily and translates that library's errors into llmops_cli.errors.
"""
