"""The adapter classes: ``hf_gpt2``, ``hf_llama``, ``hf_bert`` and the delegating ``hf_auto``.

Each implements the kernel's :class:`~guardchain.core.protocols.Adapter` protocol; the registry creates them with
their validated config (``GPT2Adapter(config)``). The work is done by one module per job: :mod:`.loading`,
:mod:`.structure`, :mod:`.sites`, :mod:`.scoring`, :mod:`.weights`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from guardchain.adapters import hub, scoring, sites, structure, weights
from guardchain.adapters.architectures import BERT, GPT2, LLAMA, Architecture, adapter_for_model_type
from guardchain.adapters.config import AutoAdapterConfig, BertAdapterConfig, CausalLMAdapterConfig
from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.loading import HeadKind, head_kind, load_handle, locate_missing, require_network
from guardchain.adapters.named import NAMED_MODELS
from guardchain.adapters.refs import cache_root, classify_ref, gguf_model_type, read_model_type
from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle, ModelStructure, SiteRef
from guardchain.core.kinds import CapabilityKind
from guardchain.core.logs import get_logger

_log = get_logger("guardchain.adapters.auto")


class HFAdapter:
    """Behaviour shared by the Hugging Face adapters; subclasses set ``name`` and ``architecture``."""

    name: ClassVar[str]
    architecture: ClassVar[Architecture]

    def __init__(self, config: CausalLMAdapterConfig | None = None) -> None:
        self.config = config if config is not None else CausalLMAdapterConfig()

    @property
    def model_types(self) -> frozenset[str]:
        """The ``config.model_type`` values this adapter handles."""
        return self.architecture.model_types

    def _head(self) -> HeadKind:
        return "causal_lm"

    def _model(self, handle: ModelHandle) -> torch.nn.Module:
        model = handle.model
        if not isinstance(model, torch.nn.Module):
            raise hf_error(
                HFErrorCode.ARCHITECTURE,
                f"adapter {self.name!r} needs a handle holding a torch.nn.Module, got {type(model).__name__}",
            )
        structure.architecture_of(model, self.model_types)
        return model

    # -- Adapter protocol -------------------------------------------------------------------------------------

    def load(self, ref: str, context: RunContext) -> ModelHandle:
        """Load ``ref`` (named model, local directory, ``.gguf`` file, or hub id with network opted in).

        The model is in eval mode on ``config.device`` in ``config.dtype``; ``handle.provenance`` holds
        ``weights_sha256``, ``tokenizer_sha256``, ``config``, ``dtype``, ``device``, ``source``, ``resolved_path``,
        library ``versions``, ``model_class`` and ``n_parameters`` (see :func:`.loading.load_handle`).

        :raises GuardchainError: ``GC-HF-NOT-FOUND``, ``GC-HF-NETWORK-DISABLED``, ``GC-HF-ARCHITECTURE``,
            ``GC-HF-HEAD-MISSING``, ``GC-HF-GGUF-UNAVAILABLE`` or ``GC-HF-LOAD-FAILED``.
        """
        return load_handle(
            ref, adapter=self.name, accepted=self.model_types, head=self._head(), config=self.config, seed=context.seed
        )

    def describe(self, handle: ModelHandle) -> ModelStructure:
        """Blocks in execution order, every 2-D weight with its family, block and stored shape (GPT-2 ``Conv1D``:
        ``(in, out)``; ``nn.Linear``: ``(out, in)``), and tied groups (see :mod:`.structure`)."""
        return structure.describe_model(self._model(handle), self.model_types)

    def token_logprobs(self, handle: ModelHandle, batch: Any) -> torch.Tensor:
        """Log-probability of each token of ``batch``: ``FloatTensor[B, T]`` on the CPU, nats, NaN at padding.

        ``batch = {"input_ids": LongTensor[B, T], "attention_mask": LongTensor[B, T]}``, content tokens only,
        right-padded. Causal LMs: entry ``t`` is ``log p(x_t | x_<t)`` and entry 0 is NaN (see
        :func:`.scoring.causal_token_logprobs`).
        """
        model = self._model(handle)
        valid = scoring.validate_batch(batch, vocab_size=_vocab_size(model), max_positions=_max_positions(model))
        return scoring.causal_token_logprobs(model, valid, forward_batch_size=self.config.forward_batch_size)

    def resolve_sites(self, handle: ModelHandle, site: str) -> Sequence[SiteRef]:
        """Expand a site string to concrete sites (grammar in :mod:`.sites`); unknown sites raise
        ``GC-HF-SITE-UNKNOWN`` with the valid forms, parts and block range."""
        return sites.resolve_site(self._model(handle), site, self.model_types)

    def snapshot(self, handle: ModelHandle, names: Collection[str] | None = None) -> weights.WeightSnapshot:
        """Clones of the distinct parameters ``names`` (all when ``None``; tied ones once), in RAM or file-backed
        under ``<cache root>/snapshots`` as ``snapshot_storage`` says (:func:`.weights.snapshot`)."""
        storage = self.config.snapshot_storage
        root = cache_root(self.config.cache_dir) / "snapshots" if storage != "memory" else None
        return weights.snapshot(self._model(handle), names, storage=storage, disk_root=root)

    def restore(self, handle: ModelHandle, snapshot: Any) -> None:
        """Copy a snapshot back in place, bit for bit (``GC-HF-SNAPSHOT-MISMATCH`` if it is not this model's)."""
        weights.restore(self._model(handle), snapshot)

    def weights_digest(self, handle: ModelHandle) -> str:
        """SHA-256 over sorted parameter names, each ``name|dtype|shape|`` then its raw bytes."""
        return weights.weights_digest(self._model(handle))


def _vocab_size(model: torch.nn.Module) -> int:
    embeddings = model.get_input_embeddings()  # type: ignore[operator]
    return int(embeddings.weight.shape[0])


def _max_positions(model: torch.nn.Module) -> int | None:
    config: Any = model.config
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


class GPT2Adapter(HFAdapter):
    """``hf_gpt2``: GPT-2 causal LMs (``GPT2LMHeadModel``)."""

    name = "hf_gpt2"
    architecture = GPT2


class LlamaAdapter(HFAdapter):
    """``hf_llama``: Llama-family causal LMs (Llama, Mistral, Qwen2, SmolLM), including ``.gguf`` files."""

    name = "hf_llama"
    architecture = LLAMA


class BertAdapter(HFAdapter):
    """``hf_bert``: BERT encoders with a masked-LM head, a sequence-classification head, or none."""

    name = "hf_bert"
    architecture = BERT

    def __init__(self, config: BertAdapterConfig | None = None) -> None:
        super().__init__(config if config is not None else BertAdapterConfig())
        self.bert_config: BertAdapterConfig = config if config is not None else BertAdapterConfig()

    def _head(self) -> HeadKind:
        return self.bert_config.head

    def load(self, ref: str, context: RunContext) -> ModelHandle:
        """Load ``ref`` with the configured head (``masked_lm`` by default); a head the checkpoint lacks raises
        ``GC-HF-HEAD-MISSING`` unless ``allow_new_head`` (then initialised under ``torch.manual_seed(context.seed)``).
        See :meth:`HFAdapter.load` for references and provenance."""
        cfg = self.bert_config
        return load_handle(
            ref,
            adapter=self.name,
            accepted=self.model_types,
            head=cfg.head,
            config=cfg,
            seed=context.seed,
            num_labels=cfg.num_labels if cfg.head == "sequence_classification" else None,
            allow_new_head=cfg.allow_new_head,
        )

    def _special(self, handle: ModelHandle, *, need_mask: bool) -> scoring.SpecialTokens:
        return scoring.SpecialTokens.from_tokenizer(handle.tokenizer, need_mask=need_mask)

    def token_logprobs(self, handle: ModelHandle, batch: Any) -> torch.Tensor:
        """Pseudo-log-likelihood of each content token (masked-LM head only): ``FloatTensor[B, T]``, CPU, nats.

        The adapter adds ``[CLS]``/``[SEP]`` itself; positions are masked in ``mlm_mask_groups`` groups (pattern
        from ``mlm_seed``, the position and the window length only) and each is scored once; padded positions are
        NaN (see :func:`.scoring.mlm_pseudo_loglik`).

        :raises GuardchainError: ``GC-HF-HEAD-UNSUPPORTED`` for a classification head or a bare encoder.
        """
        model = self._model(handle)
        kind = head_kind(model)
        if kind != "masked_lm":
            raise hf_error(
                HFErrorCode.HEAD_UNSUPPORTED,
                f"token_logprobs needs a masked-LM head, but this {type(model).__name__} has head {kind!r}",
                hint="use class_logits(handle, batch) for a sequence-classification head, or load with head: masked_lm"
                if kind == "sequence_classification"
                else "load with head: masked_lm",
            )
        valid = scoring.validate_batch(batch, vocab_size=_vocab_size(model), max_positions=_content_positions(model))
        cfg = self.bert_config
        return scoring.mlm_pseudo_loglik(
            model,
            valid,
            self._special(handle, need_mask=True),
            n_groups=cfg.mlm_mask_groups,
            seed=cfg.mlm_seed,
            forward_batch_size=cfg.forward_batch_size,
        )

    def class_logits(self, handle: ModelHandle, batch: Any) -> torch.Tensor:
        """Classifier logits ``FloatTensor[B, num_labels]`` (CPU) of each window of ``batch`` (content tokens,
        right-padded, as for :meth:`token_logprobs`; ``[CLS]``/``[SEP]`` are added here).

        :raises GuardchainError: ``GC-HF-HEAD-UNSUPPORTED`` unless the head is ``sequence_classification``.
        """
        model = self._model(handle)
        kind = head_kind(model)
        if kind != "sequence_classification":
            raise hf_error(
                HFErrorCode.HEAD_UNSUPPORTED,
                f"class_logits needs a sequence-classification head, but this {type(model).__name__} has head {kind!r}",
                hint="load with head: sequence_classification",
            )
        valid = scoring.validate_batch(batch, vocab_size=_vocab_size(model), max_positions=_content_positions(model))
        return scoring.class_logits(
            model,
            valid,
            self._special(handle, need_mask=False),
            forward_batch_size=self.bert_config.forward_batch_size,
        )


def _content_positions(model: torch.nn.Module) -> int | None:
    total = _max_positions(model)
    return None if total is None else total - 2


BUILTIN: dict[str, type[HFAdapter]] = {cls.name: cls for cls in (GPT2Adapter, LlamaAdapter, BertAdapter)}


class AutoAdapter:
    """``hf_auto``: reads the checkpoint's ``model_type`` and delegates to the adapter the registry names.

    ``load`` finds the model type cheaply (named model table, ``config.json``, GGUF header; a hub id is fetched
    first, only with ``GUARDCHAIN_ALLOW_NETWORK=1``), asks ``context.registry.resolve_adapter(ref,
    {"model_type": ...})`` — the kernel's first-result ``guardchain_resolve_adapter`` hook, so another plugin may
    claim the model — creates that adapter through the registry with the applicable fields of this config, and
    loads with it. Without a registry (or when no plugin answers) the built-in table decides. The handle is
    labelled ``adapter="hf_auto"`` with ``provenance["resolved_adapter"]`` naming the delegate; every other
    method forwards to the delegate.
    """

    name: ClassVar[str] = "hf_auto"

    def __init__(self, config: AutoAdapterConfig | None = None) -> None:
        self.config = config if config is not None else AutoAdapterConfig()
        self._delegates: dict[str, Any] = {}

    def model_type_of(self, ref: str) -> str:
        """The ``model_type`` behind ``ref`` (fetching a hub id when network is allowed).

        :raises GuardchainError: ``GC-HF-NOT-FOUND``, ``GC-HF-NETWORK-DISABLED`` or ``GC-HF-ARCHITECTURE``.
        """
        kind = classify_ref(ref)
        model_type: str | None
        if kind == "named":
            model_type = NAMED_MODELS[ref].model_type
        elif kind == "dir":
            model_type = read_model_type(Path(ref).expanduser())
        elif kind == "gguf":
            model_type = gguf_model_type(Path(ref).expanduser()) or "llama"
        elif kind == "hub":
            require_network(ref)
            local = hub.fetch_hub_model(
                ref, revision=self.config.revision, cache_dir=cache_root(self.config.cache_dir) / "hub"
            )
            model_type = read_model_type(local)
        else:
            raise locate_missing(ref)
        if model_type is None:
            raise hf_error(HFErrorCode.ARCHITECTURE, f"cannot tell the architecture of {ref!r}: no model_type")
        return model_type

    def _choose(self, ref: str, model_type: str, context: RunContext) -> str:
        name: str | None = None
        if context.registry is not None:
            hints = {"model_type": model_type, "is_local_dir": Path(ref).expanduser().is_dir()}
            name, problems = context.registry.resolve_adapter(ref, hints)
            for problem in problems:  # another plugin's resolve hook raised; the others were still asked
                _log.warning("hf_auto.resolve_hook_failed", code=str(problem.code), error=problem.message)
        if name is None or name == self.name:
            name = adapter_for_model_type(model_type)
        if name is None:
            raise hf_error(
                HFErrorCode.ARCHITECTURE,
                f"no adapter handles model_type {model_type!r} of {ref!r}",
                expected="a model_type some installed adapter claims",
            )
        return name

    def _delegate_config(self, name: str, fields: Sequence[str]) -> dict[str, Any]:
        chosen = {k: v for k, v in self.config.model_dump().items() if k in self.config.model_fields_set}
        stray = sorted(k for k in chosen if k not in fields)
        if stray:
            raise hf_error(
                HFErrorCode.CONFIG_MISMATCH,
                f"hf_auto resolved the model to {name!r}, which has no option(s) {', '.join(stray)}",
                hint="remove BERT-only options (head, num_labels, allow_new_head, mlm_*) for causal LMs",
            )
        return {k: v for k, v in chosen.items() if k in fields}

    def _create(self, name: str, context: RunContext | None) -> Any:
        if name in self._delegates:
            return self._delegates[name]
        if context is not None and context.registry is not None:
            spec = context.registry.get_spec(CapabilityKind.ADAPTER, name)
            config = self._delegate_config(name, list(spec.config_model.model_fields))
            instance = context.registry.create(CapabilityKind.ADAPTER, name, config).instance
        elif name in BUILTIN:
            cls = BUILTIN[name]
            model = BertAdapterConfig if cls is BertAdapter else CausalLMAdapterConfig
            instance = cls(model(**self._delegate_config(name, list(model.model_fields))))
        else:
            raise hf_error(
                HFErrorCode.ARCHITECTURE,
                f"hf_auto cannot create adapter {name!r} without a registry",
            )
        self._delegates[name] = instance
        return instance

    def _for(self, handle: ModelHandle) -> Any:
        name = handle.provenance.get("resolved_adapter") if handle.adapter == self.name else handle.adapter
        if not isinstance(name, str):
            raise hf_error(HFErrorCode.ARCHITECTURE, "this handle was not loaded by a guardchain adapter")
        return self._create(name, None)

    def load(self, ref: str, context: RunContext) -> ModelHandle:
        """Find the model type, ask the registry which adapter handles it, and load with that adapter.

        :raises GuardchainError: as the delegate's ``load``; ``GC-HF-CONFIG-MISMATCH`` when a BERT-only option
            is set and the model is not a BERT.
        """
        model_type = self.model_type_of(ref)
        name = self._choose(ref, model_type, context)
        handle: ModelHandle = self._create(name, context).load(ref, context)
        provenance = {**handle.provenance, "adapter": self.name, "resolved_adapter": name}
        return replace(handle, adapter=self.name, provenance=provenance)

    def describe(self, handle: ModelHandle) -> ModelStructure:
        """The delegate's :meth:`HFAdapter.describe`."""
        result: ModelStructure = self._for(handle).describe(handle)
        return result

    def token_logprobs(self, handle: ModelHandle, batch: Any) -> Any:
        """The delegate's ``token_logprobs`` (causal log-probabilities or masked-LM pseudo-log-likelihood)."""
        return self._for(handle).token_logprobs(handle, batch)

    def class_logits(self, handle: ModelHandle, batch: Any) -> Any:
        """The delegate's ``class_logits`` (BERT sequence classification)."""
        delegate = self._for(handle)
        if not hasattr(delegate, "class_logits"):
            raise hf_error(HFErrorCode.HEAD_UNSUPPORTED, f"adapter {handle.adapter!r} has no class_logits")
        return delegate.class_logits(handle, batch)

    def resolve_sites(self, handle: ModelHandle, site: str) -> Sequence[SiteRef]:
        """The delegate's ``resolve_sites``."""
        result: Sequence[SiteRef] = self._for(handle).resolve_sites(handle, site)
        return result

    def snapshot(self, handle: ModelHandle, names: Collection[str] | None = None) -> Any:
        """The delegate's ``snapshot``."""
        return self._for(handle).snapshot(handle, names)

    def restore(self, handle: ModelHandle, snapshot: Any) -> None:
        """The delegate's ``restore``."""
        self._for(handle).restore(handle, snapshot)

    def weights_digest(self, handle: ModelHandle) -> str:
        """The delegate's ``weights_digest``."""
        digest: str = self._for(handle).weights_digest(handle)
        return digest
