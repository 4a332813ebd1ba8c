"""guardchain's weight edits: symmetric round-to-nearest (RTN) fake quantization.

Capabilities (kind ``edit``, registered by :mod:`guardchain.edits.plugin`): ``quant_rtn``
(:class:`guardchain.edits.quant_rtn.QuantRTN`), built on the pure tensor function
:func:`guardchain.edits.quantization.fake_quantize`. Importing this package imports neither torch nor pydantic.
"""

__version__ = "0.1.0"
