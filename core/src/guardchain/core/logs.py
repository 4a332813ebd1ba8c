"""Logging: structlog events on stderr, pretty on a terminal, JSON lines on request.

Machine output (JSON listings, run records) goes to stdout and never mixes with logs. Loggers are lazy: an event
below the configured level costs one comparison and never imports structlog, which keeps ``guardchain --help``
and ``plugins list`` fast.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Literal, TextIO

LogFormat = Literal["auto", "pretty", "json"]
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_state: dict[str, Any] = {"threshold": LEVELS["warning"], "format": "auto", "configured": False}


class LazyLogger:
    """A structlog-compatible logger that imports structlog only for events at or above the threshold."""

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = dict(context or {})

    def bind(self, **values: Any) -> LazyLogger:
        """A logger that adds ``values`` to every event."""
        return LazyLogger(self._name, {**self._context, **values})

    def _emit(self, level: str, event: str, values: dict[str, Any]) -> None:
        if LEVELS[level] < _state["threshold"]:
            return
        import structlog  # structlog loads on the first log call

        _configure_structlog()
        logger = structlog.get_logger(self._name).bind(logger=self._name, **self._context)
        getattr(logger, level)(event, **values)

    def debug(self, event: str, **values: Any) -> None:
        """Log at debug level."""
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        """Log at info level."""
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        """Log at warning level."""
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        """Log at error level."""
        self._emit("error", event, values)


def get_logger(name: str) -> LazyLogger:
    """The logger for ``name`` (e.g. ``guardchain.registry``)."""
    return LazyLogger(name)


def configure_logging(fmt: LogFormat = "auto", level: str = "warning") -> None:
    """Route log events to stderr (structlog is configured on the first event that passes the level).

    :param fmt: ``pretty`` (console renderer), ``json`` (one JSON object per line), or ``auto``: pretty when
        stderr is a terminal, JSON otherwise.
    :param level: minimum level name: debug, info, warning or error.
    """
    _state["threshold"] = LEVELS.get(level, LEVELS["warning"])
    _state["format"] = fmt
    _state["configured"] = False


def capture_python_warnings() -> None:
    """Send Python warnings (a library's ``DeprecationWarning``, the ``llc`` metric's ``LlcWarning``) to this log.

    Each becomes one ``python.warning`` event at warning level, with its ``category``, ``message`` and ``source``
    (``file:line``), in the format the command's other events use, instead of the interpreter's two raw lines
    (path, then source code). Python's filters still decide which warnings are shown, and how often.
    """
    warnings.showwarning = _log_warning


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    get_logger("guardchain.warnings").warning(
        "python.warning", category=category.__name__, message=str(message), source=f"{filename}:{lineno}"
    )


def _configure_structlog() -> None:
    if _state["configured"]:
        return
    import structlog  # structlog loads on the first log call

    fmt = _state["format"]
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks if use_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_state["threshold"]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _state["configured"] = True
