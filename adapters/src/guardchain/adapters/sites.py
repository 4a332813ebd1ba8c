"""Site strings: a grammar shared by every adapter, resolved to module paths and hook points.

Grammar (whitespace around the string is ignored)::

    site     := "blocks[" selector "]." part          e.g. blocks[3].mlp.output, blocks[*].attn.input
              | bare                                   e.g. residual_post (= blocks[*].residual_post)
              | module_path [ ".input" | ".output" ]   e.g. transformer.h.3.mlp.c_proj
    selector := INT | "*" | [INT] ":" [INT] [ ":" [INT] ]   python semantics: negative counts from the end
    part     := input | output | attn.input | attn.output | mlp.input | mlp.output
              | residual_pre | residual_post | attn_out | mlp_out
    bare     := residual_pre | residual_post | attn_out | mlp_out

========================= ============================== ======== ==========================================
part                      module (relative to the block)  hook     meaning
========================= ============================== ======== ==========================================
input, residual_pre       the block                      INPUT    residual stream entering the block
output, residual_post     the block                      OUTPUT   residual stream leaving the block
attn.input                attention                      INPUT    what the attention module receives
attn.output, attn_out     attention                      OUTPUT   attention output (BERT: after its residual
                                                                  add and LayerNorm, i.e. BertAttention's)
mlp.input                 MLP input module               INPUT    GPT-2/Llama ``mlp``; BERT ``intermediate``
mlp.output, mlp_out       MLP output module              OUTPUT   MLP output before the residual add
                                                                  (GPT-2/Llama ``mlp``; BERT ``output.dense``)
========================= ============================== ======== ==========================================

A module path (``transformer.h.3.mlp.c_proj``) hooks that module's output; a final ``.input`` / ``.output`` picks
the hook when that last component is not itself a submodule (BERT's ``...layer.0.output`` *is* a module, so it
means that module's output, and ``...layer.0.output.input`` its input).

Each resolved :class:`~guardchain.core.handles.SiteRef` carries the canonical expanded site string
(``blocks[3].mlp.output``; ``<module path>.<hook>`` for module paths), so resolving a canonical string again gives
the same site. ``details`` says how to read the activation: ``{"tuple_index": 0}`` for an output hook on a module
that returns a tuple; ``{"input_arg": 0}`` or ``{"input_kwarg": "hidden_states"}`` for an input hook, the latter
when the module receives its input by keyword (register the pre-hook ``with_kwargs=True``).
"""

from __future__ import annotations

import difflib
import re

import torch

from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.probe import module_io
from guardchain.adapters.structure import BlockLayout, block_layout
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, SiteRef

#: part -> (role, hook); role is "block", "attn", "mlp_in" or "mlp_out".
PARTS: dict[str, tuple[str, HookPoint]] = {
    "input": ("block", HookPoint.INPUT),
    "output": ("block", HookPoint.OUTPUT),
    "residual_pre": ("block", HookPoint.INPUT),
    "residual_post": ("block", HookPoint.OUTPUT),
    "attn.input": ("attn", HookPoint.INPUT),
    "attn.output": ("attn", HookPoint.OUTPUT),
    "attn_out": ("attn", HookPoint.OUTPUT),
    "mlp.input": ("mlp_in", HookPoint.INPUT),
    "mlp.output": ("mlp_out", HookPoint.OUTPUT),
    "mlp_out": ("mlp_out", HookPoint.OUTPUT),
}
BARE_NAMES = ("residual_pre", "residual_post", "attn_out", "mlp_out")

_BLOCK_SITE = re.compile(r"^blocks\[(?P<selector>[^\]]*)\]\.(?P<part>.+)$")
_INDEX = re.compile(r"^-?\d+$")
_SLICE = re.compile(r"^(?P<start>-?\d+)?:(?P<stop>-?\d+)?(?::(?P<step>-?\d+)?)?$")


def _unknown(site: str, n_blocks: int, reason: str, hint: str = "") -> GuardchainError:
    valid = (
        "valid site forms: blocks[I].PART with I an integer (negative counts from the end), '*' or a slice a:b; "
        f"a bare {', '.join(BARE_NAMES)} (every block); or a module path of the model, optionally ending in "
        f".input or .output. PART is one of: {', '.join(PARTS)}. This model has {n_blocks} blocks "
        f"(I in 0..{n_blocks - 1}, or -{n_blocks}..-1)"
    )
    return hf_error(
        HFErrorCode.SITE_UNKNOWN,
        f"unknown site {site!r}: {reason}; {valid}",
        hint=hint,
        details={"site": site, "parts": list(PARTS), "bare": list(BARE_NAMES), "n_blocks": n_blocks},
    )


def select_blocks(selector: str, n_blocks: int, site: str) -> list[int]:
    """Block indices named by a selector (``3``, ``-1``, ``*``, ``1:3``, ``::2``), in selection order.

    :raises GuardchainError: ``GC-HF-SITE-UNKNOWN`` for a malformed selector, an index out of range, a zero step
        or an empty selection.
    """
    text = selector.replace(" ", "")
    if text == "*":
        return list(range(n_blocks))
    if _INDEX.match(text):
        index = int(text)
        if not -n_blocks <= index < n_blocks:
            raise _unknown(site, n_blocks, f"block index {index} is out of range")
        return [index % n_blocks]
    match = _SLICE.match(text)
    if match:
        start, stop, step = (None if v is None else int(v) for v in match.group("start", "stop", "step"))
        if step == 0:
            raise _unknown(site, n_blocks, "a slice step cannot be zero")
        chosen = list(range(n_blocks)[slice(start, stop, step)])
        if not chosen:
            raise _unknown(site, n_blocks, f"the slice {selector!r} selects no block")
        return chosen
    raise _unknown(site, n_blocks, f"{selector!r} is not a block selector (an integer, '*' or a slice a:b)")


def _role_module(layout: BlockLayout, index: int, role: str) -> str:
    block = layout.blocks[index]
    relative = {"block": "", "attn": layout.arch.attn, "mlp_in": layout.arch.mlp_in, "mlp_out": layout.arch.mlp_out}
    return f"{block}.{relative[role]}" if relative[role] else block


def _site_ref(
    model: torch.nn.Module, layout: BlockLayout, site: str, path: str, hook: HookPoint, block: int | None
) -> SiteRef:
    io = module_io(model, causal=layout.arch.kind == "causal_lm").get(path)
    details: dict[str, object] = {}
    if io is not None and hook is HookPoint.OUTPUT and io.output_is_tuple:
        details["tuple_index"] = 0
    if io is not None and hook is HookPoint.INPUT:
        details.update({"input_kwarg": io.input_kwarg} if io.input_kwarg else {"input_arg": 0})
    return SiteRef(site=site, module_path=path, hook=hook, block=block, details=details)


def resolve_site(model: torch.nn.Module, site: str, accepted: frozenset[str] | None = None) -> list[SiteRef]:
    """Expand ``site`` (see the module docstring) into concrete sites of ``model``, in block order.

    :raises GuardchainError: ``GC-HF-SITE-UNKNOWN`` (message lists the valid forms, parts and block range).
    """
    layout = block_layout(model, accepted)
    n_blocks = len(layout.blocks)
    text = site.strip()
    if text in BARE_NAMES:
        selector, part = "*", text
    else:
        match = _BLOCK_SITE.match(text)
        if match is None and text.startswith("blocks"):
            raise _unknown(site, n_blocks, "a block site is written blocks[I].PART")
        selector, part = (match.group("selector"), match.group("part")) if match else ("", "")
    if part:
        if part not in PARTS:
            raise _unknown(site, n_blocks, f"{part!r} is not a block part")
        role, hook = PARTS[part]
        return [
            _site_ref(model, layout, f"blocks[{i}].{part}", _role_module(layout, i, role), hook, i)
            for i in select_blocks(selector, n_blocks, site)
        ]
    return [_module_site(model, layout, site, text)]


def _module_site(model: torch.nn.Module, layout: BlockLayout, site: str, text: str) -> SiteRef:
    modules = dict(model.named_modules())
    path, hook = text, HookPoint.OUTPUT
    if text not in modules or not text:
        head, _, last = text.rpartition(".")
        if last in ("input", "output") and head in modules and head:
            path, hook = head, HookPoint(last)
        else:
            close = difflib.get_close_matches(text, [m for m in modules if m], n=3)
            hint = ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
            raise _unknown(site, len(layout.blocks), "not a block site, a bare name, nor a module path", hint)
    inside = layout.block_of(path)
    return _site_ref(model, layout, f"{path}.{hook.value}", path, hook, inside[0] if inside else None)
