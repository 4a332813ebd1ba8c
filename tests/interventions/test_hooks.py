"""Hooks are good citizens: only this member's hooks are removed; users' and other plugins' hooks survive."""

from __future__ import annotations

from typing import Any

import torch

from guardchain.interventions import Add, Collect, IntervenedModel, Units, Zero


def _hook_counts(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks
    }


def test_a_user_hook_registered_before_still_fires_afterwards(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    batch = tokens("gpt2", 2, 6)
    fired: list[str] = []
    block = model.get_submodule("transformer.h.0")
    user_post = block.register_forward_hook(lambda *_: fired.append("post"))
    user_pre = block.register_forward_pre_hook(lambda *_: fired.append("pre"))
    before = _hook_counts(model)
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", Zero(), Units(positions=[0]))])
    fired.clear()  # the adapter's site probe ran a forward pass
    with torch.no_grad():
        im(**batch)
        with im:
            model(**batch)
        with im.attach():
            model(**batch)
    assert fired == ["pre", "post"] * 3, fired
    assert _hook_counts(model) == before, "exactly this member's hooks were removed"
    with torch.no_grad():
        model(**batch)
    assert fired[-2:] == ["pre", "post"], "the user's hooks fire after the intervened forward"
    user_post.remove()
    user_pre.remove()
    assert _hook_counts(model) == {}


def test_hooks_are_removed_when_the_forward_raises(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", Add(torch.ones(31)))])
    try:
        im(**tokens("gpt2", 1, 4))
    except Exception as exc:
        assert "GC-INTERVENTION-SHAPE" in str(exc)
    assert _hook_counts(handle.model) == {}


def test_several_plugins_hooks_coexist_on_one_model(load_tiny, tokens, iv_registry, iv_context):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    batch = tokens("gpt2", 2, 7)
    v = [0.5] * 32
    add = iv_registry.create("intervention", "add", {"vector": v, "positions": [-1]}).instance
    collect = iv_registry.create("intervention", "collect", {"positions": [-1]}).instance
    zero = iv_registry.create("intervention", "zero", {"positions": [0]}).instance
    ours = Collect()
    python_api = IntervenedModel.from_sites(adapter, handle, [("blocks[1].output", ours, Units(positions=[-1]))])

    user_seen: list[torch.Tensor] = []
    user = model.get_submodule("transformer.h.1").register_forward_hook(
        lambda _m, _a, out: user_seen.append((out[0] if isinstance(out, tuple) else out).detach().clone())
    )

    def expected_logits() -> Any:
        def edit0(_m: Any, _a: Any, out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            out[:, -1] += torch.tensor(v)
            out[:, 0] = 0
            return out

        raw = model.get_submodule("transformer.h.0").register_forward_hook(edit0)
        try:
            with torch.no_grad():
                return model(**batch).logits
        finally:
            raw.remove()

    a = add.attach(handle, ["blocks[0].output"], iv_context)
    z = zero.attach(handle, ["blocks[0].output"], iv_context)
    c = collect.attach(handle, ["blocks[1].output"], iv_context)
    with torch.no_grad(), python_api:
        got = model(**batch).logits
    a.remove()
    z.remove()
    with torch.no_grad():
        plain = model(**batch).logits
    c.remove()
    user.remove()
    torch.testing.assert_close(got, expected_logits(), rtol=0, atol=1e-6)
    # every reader saw the same edited activation during the intervened call
    (from_plugin,) = c.records["blocks[1].output"][:1]
    assert torch.equal(from_plugin, ours.last("blocks[1].output"))
    assert torch.equal(from_plugin, user_seen[0][:, [-1]])
    # after add/zero were removed, collect (still attached) saw the plain forward
    assert torch.equal(c.records["blocks[1].output"][1], user_seen[1][:, [-1]])
    assert not torch.equal(got, plain)
    assert _hook_counts(model) == {}


def test_remove_is_idempotent_and_nested_attachments_are_independent(load_tiny, tokens):
    adapter, handle = load_tiny("llama")
    batch = tokens("llama", 1, 5)
    first = IntervenedModel.from_sites(adapter, handle, [("blocks[0].attn.input", Collect())])
    second = IntervenedModel.from_sites(adapter, handle, [("blocks[0].attn.input", Collect())])
    one = first.attach()
    two = second.attach()
    one.remove()
    one.remove()
    with torch.no_grad():
        handle.model(**batch)
    assert first.records == {} and len(second.records["blocks[0].attn.input"]) == 1
    two.remove()
    assert _hook_counts(handle.model) == {}
