"""`finetune embedder --lora` puts the PEFT model where sentence-transformers reads it (no torch, no training here)."""

from __future__ import annotations

from llmops_cli.adapters.embedders.training import _set_backbone


class _ST6Transformer:
    """sentence-transformers 6: ``auto_model`` is a read-only property over ``model``."""

    def __init__(self, model):
        self.model = model

    @property
    def auto_model(self):
        return self.model


class _ST5Transformer:
    def __init__(self, model):
        self.auto_model = model


def test_the_wrapped_model_is_what_auto_model_returns_in_both_versions():
    # with sentence-transformers 6, `transformer.auto_model = peft_model` left auto_model the plain BertModel and the
    # merge died: "internal error: AttributeError: 'BertModel' object has no attribute 'merge_and_unload'"
    for cls in (_ST6Transformer, _ST5Transformer):
        t = cls("plain")
        _set_backbone(t, "peft-wrapped")
        assert t.auto_model == "peft-wrapped"
        _set_backbone(t, "merged")
        assert t.auto_model == "merged"
