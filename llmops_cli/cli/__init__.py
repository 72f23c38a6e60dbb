"""The Typer CLI: parsing and rendering only. Command modules import heavy code inside their functions."""
