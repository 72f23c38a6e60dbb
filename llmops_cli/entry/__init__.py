"""Entry points by step, shared by the CLI and the Airflow DAGs: each takes a ``wiring.Workspace`` (settings in,
adapters built on first use), runs the core step with its parts and returns a result that declares its fields.
One module per step: store, ingest, verify, ask, batch, feedback, eval; ``dag_support`` is the DAGs' glue.
Core never imports this layer.
"""
