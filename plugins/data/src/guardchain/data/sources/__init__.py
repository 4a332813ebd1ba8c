"""Readers of the raw material: each returns documents (or records) plus a one-line description of the source.

Readers know nothing about tokenizers or windows; :mod:`guardchain.data.datasets` joins them to the windowing.
"""
