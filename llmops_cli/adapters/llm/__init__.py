"""LLM adapters. base.LLM is the interface; litellm_llm.LiteLLM talks to any litellm model."""
