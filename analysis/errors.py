"""The one exception type the CLI turns into a one-line message instead of a traceback, and
the pieces of its messages."""


class AnalysisError(ValueError):
    """Bad input: the message names the offending value and, where there are any, the valid ones."""


def unknown(kind: str, value: object, valid: object) -> AnalysisError:
    choices = ", ".join(sorted(map(str, valid))) or "(none)"
    return AnalysisError(f"unknown {kind} {value!r}; valid: {choices}")


def option_name(dest: str) -> str:
    """The command-line option of an argparse ``dest``: min_over -> --min-over."""
    return "--" + dest.replace("_", "-")
