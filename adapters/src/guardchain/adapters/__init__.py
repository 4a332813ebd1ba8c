"""guardchain adapters for Hugging Face ``transformers`` models.

Four adapters are registered by :mod:`guardchain.adapters.plugin` (entry point ``hf`` in ``guardchain.plugins``):

* ``hf_gpt2`` — GPT-2 causal LMs (``model_type`` ``gpt2``);
* ``hf_llama`` — Llama-family causal LMs: Llama, Mistral, Qwen2, SmolLM (``llama`` / ``mistral`` / ``qwen2``);
* ``hf_bert`` — BERT encoders with a masked-LM head, a sequence-classification head, or no head;
* ``hf_auto`` — reads the checkpoint's ``model_type`` and delegates to whichever adapter the registry's
  ``guardchain_resolve_adapter`` hook names.

Importing this package is cheap: torch and transformers are imported only by the implementation modules, which the
registry imports when a chain actually uses an adapter.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
