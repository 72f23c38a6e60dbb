"""Questions written for the Airflow docs corpus (../shared/corpora/airflow-docs), each with the page that answers it.

Used by the retrieval integration test and by the benchmarks (retrieval quality per embedding backend)."""

QUESTIONS: list[tuple[str, str]] = [
    (
        "How can I make a task run once for each item in a list produced by an upstream task?",
        "authoring-and-scheduling/dynamic-task-mapping.rst",
    ),
    (
        "How do I limit how many tasks can use a shared database at the same time?",
        "administration-and-deployment/pools.rst",
    ),
    (
        "Which encryption key protects connection passwords stored in the metadata database?",
        "security/secrets/fernet.rst",
    ),
    (
        "How do I start a DAG when another DAG has updated the data it depends on?",
        "authoring-and-scheduling/assets.rst",
    ),
    ("How do I run a DAG for past dates that were never run?", "core-concepts/backfill.rst"),
    (
        "How can a task give up its worker slot while it waits for an external event?",
        "authoring-and-scheduling/deferring.rst",
    ),
    ("How do tasks pass small values to each other?", "core-concepts/xcoms.rst"),
    ("How do I stop passwords from showing up in task logs?", "security/secrets/mask-sensitive-values.rst"),
    (
        "How do I get a JWT token for the REST API with the simple auth manager?",
        "core-concepts/auth-manager/simple/token.rst",
    ),
    ("How do I set an Airflow configuration option with an environment variable?", "howto/set-config.rst"),
    ("How does the LocalExecutor run several tasks in parallel on one machine?", "core-concepts/executor/local.rst"),
    ("How do I write my own operator class?", "howto/custom-operator.rst"),
    (
        "How do I create resources before my tasks and always clean them up afterwards, even on failure?",
        "howto/setup-and-teardown.rst",
    ),
    ("How do I make a DAG's schedule follow a specific time zone?", "authoring-and-scheduling/timezone.rst"),
    ("How do I validate the values a user passes when triggering a DAG by hand?", "core-concepts/params.rst"),
    ("How do I serve the Airflow UI behind an nginx reverse proxy under a URL prefix?", "howto/run-behind-proxy.rst"),
]
