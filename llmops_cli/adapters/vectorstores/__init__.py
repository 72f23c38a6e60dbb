"""Vector stores. base.VectorStore is the interface; chroma.ChromaStore the implementation."""
