"""Fine-tuning, measured before it is adopted: training pairs gathered from what the project already knows is good
(promoted and up-rated answers, eval datasets), a held-out split, base-vs-tuned retrieval metrics with bootstrap
confidence intervals, and the record of every run in the state database. No torch here: the training itself is an
adapter (``adapters/embedders/training.py``) handed in by the entry point."""
