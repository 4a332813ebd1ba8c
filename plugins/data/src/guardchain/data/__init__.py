"""guardchain's data sources: texts cut into seeded, non-overlapping token windows, and labelled examples.

Capabilities (kind ``dataset``, registered by :mod:`guardchain.data.plugin`): ``text``, ``jsonl``,
``hf_datasets``, ``pydoc``, ``bible`` and ``kjv_excerpt``. Every text source yields documents
(:class:`guardchain.data.documents.Document`) that :mod:`guardchain.data.windowing` tokenizes with the model's
tokenizer and cuts into :class:`guardchain.core.windows.TokenWindows`; ``jsonl`` and ``hf_datasets`` with a
``label_field`` yield :class:`guardchain.core.windows.LabeledTexts` instead.

This package never imports torch or transformers: the tokenizer is reached through the loaded model's handle.
"""

__version__ = "0.1.0"
