"""Example DAGs: one per source kind (Markdown docs from a git checkout, a Slack export, a GitHub issues export), each
on its own schedule, all feeding one collection (``team-kb``). They are not in the package's DAG folder
(``llmops_cli/dags``), so no Airflow of ours parses or schedules them; copy one into your DAG folder, or add this
folder as a DAG bundle, and set the locations through the LLMOPS_EXAMPLE_* variables of your workers."""
