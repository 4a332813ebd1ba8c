"""guardchain's HTML report: one self-contained page per certification or chain run (``guardchain report``).

Registered by :mod:`guardchain.report.plugin` (the ``report`` command, through ``guardchain_register_commands``).
Results are drawn by the renderers plugins supply through ``guardchain_render_result`` (declarative charts of
:mod:`guardchain.core.views`), as inline SVG; :mod:`.generic` draws any result nobody renders. Python API:
:func:`guardchain.report.build.build_page` and :func:`guardchain.report.build.write_report`. Importing this
package imports neither torch nor numpy.
"""

__version__ = "0.1.0"
