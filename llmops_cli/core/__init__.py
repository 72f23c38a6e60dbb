"""Core steps: no printing, no environment reading, no sys.exit. Adapters come in as arguments."""
