"""Entry points by step, shared by the CLI and the Airflow DAGs: settings in, adapters built here, core steps run
with them. Core never imports this layer. (Steps not yet moved here still live in ``llmops_cli.pipelines``.)
"""
