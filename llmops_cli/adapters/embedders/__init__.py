"""Embedders: sentence-transformers (torch), onnxruntime, litellm. See base.Embedder."""
