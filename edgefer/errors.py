"""Errors that the CLI turns into one line on stderr and exit code 2.

Every message names *where* (file, row, path or field) and *what was expected*, so a user can
fix the input without reading a traceback.
"""


def shown(value, limit: int | None = 60) -> str:
    """`value` as it may appear in a one-line message: characters that are not printable
    (newlines, tabs, NUL, surrogates of undecodable file names) escaped as in repr(), and text
    longer than `limit` cut with '...'. Paths are shown with limit=None."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def validation_line(exc, noun: str = "key", name=dotted) -> str:
    """A pydantic ValidationError as our one line: `key a.b: what was expected`, for the first
    problem; `name` turns an error's location into what the user wrote (a command-line flag for
    a key set by one). A required key reported missing next to an unknown key in the same table
    is most likely a misspelling, so the line names both (`hots = ...` for `host`)."""
    errors = exc.errors()
    err = errors[0]
    where = name(err["loc"]) or "(top level)"
    line = f"{noun} {shown(where)}: {shown(err['msg'], 200)}"
    if err["type"] == "missing":
        unknown = [
            name(e["loc"])
            for e in errors
            if e["type"] == "extra_forbidden" and e["loc"][:-1] == err["loc"][:-1]
        ]
        if unknown:
            line += (
                f" (and {', '.join(shown(u) for u in unknown)} is not a known {noun}: misspelt?)"
            )
    return line


class EdgeferError(Exception):
    """A problem with the user's input or environment, not a bug in edgefer."""

    exit_code = 2


class DataError(EdgeferError):
    """A data file, folder, row or image that is not what edgefer expects."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


class MissingExtraError(EdgeferError):
    """An optional dependency is not installed."""


def require(module: str, extra: str):
    """Import an optional dependency or say which extra installs it.

    Why: `edgefer --help` and the device commands work on the base install; only the commands
    that need TensorFlow/ONNX import them, and a missing one must read as an instruction.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this command needs '{module}' ({exc}); install it with: pip install 'edgefer[{extra}]'"
        ) from None
