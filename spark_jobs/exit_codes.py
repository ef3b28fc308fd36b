"""Exit codes a scheduler can act on (README "Exit codes")."""

from __future__ import annotations

SUCCESS = 0
INFRASTRUCTURE = 1  # Spark, Java, the file system or the cluster failed: retry later
BAD_ARGUMENTS = 2  # fix the command line (argparse's own code)
INPUT_MISSING = 3  # an --input path does not exist
TOO_MANY_ERRORS = 4  # the run committed, but more files failed than --max-error-rate allows
OUTPUT_BUSY = 5  # another run holds the output's lock (output_lock.py): retry later
SIGNAL_BASE = 128  # stopped by a signal: 128 + its number, as shells say (SIGINT 130, SIGTERM 143)


class BadArguments(Exception):
    """A command that cannot run as asked, found only once the job could look at the output."""


class RunRefused(BadArguments):
    """An increment that cannot go on with what the output holds (its run id sorts before a
    committed run's, other feature settings): refused before its run record is written."""


class InputEmpty(Exception):
    """Nothing listed under the inputs, where the output holds files (--allow-empty-input)."""


def first_line(exc: BaseException) -> str:
    """``Type: message`` on one line. For an exception the JVM raised, the Java exception's
    line and its root cause's: py4j's own message only names the call that failed."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return _java_lines(java)
        except Exception:  # noqa: BLE001 - the JVM is gone: say what Python knows
            pass
    return f"{type(exc).__name__}: {_head(str(exc))}"


def _java_lines(java) -> str:
    line = _head(java.toString())
    root = java
    for _ in range(20):  # causes can chain deep (Spark wraps task failures several times)
        cause = root.getCause()
        if cause is None or cause.equals(root):
            break
        root = cause
    if root.equals(java):
        return line
    cause = _head(root.toString())
    return line if cause in line else f"{line} (cause: {cause})"


TRACEBACK = "Traceback (most recent call last):"


def _head(text: str) -> str:
    """The first line; for a Python worker's failure (PythonException), whose first line only
    says one happened, the error its traceback ends with ("ModuleNotFoundError: ...")."""
    lines = str(text).strip().splitlines()
    head = lines[0].strip() if lines else ""
    if TRACEBACK in text:
        after = str(text).rsplit(TRACEBACK, 1)[1].splitlines()
        # Frames are indented; the first line that is not is the error (Java frames follow it).
        error = next((line.strip() for line in after if line.strip() and not line[0].isspace()), "")
        if error:
            return head.split(TRACEBACK)[0] + error if TRACEBACK in head else error
    return head


def classify(exc: BaseException) -> int:
    """BAD_ARGUMENTS for BadArguments, INPUT_MISSING for InputEmpty and Spark's 'path does
    not exist', INFRASTRUCTURE for anything else."""
    if isinstance(exc, BadArguments):
        return BAD_ARGUMENTS
    if isinstance(exc, InputEmpty):
        return INPUT_MISSING
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        name = condition() if condition else None
    except Exception:  # noqa: BLE001 - an exception without a condition
        name = None
    if name == "PATH_NOT_FOUND" or "PATH_NOT_FOUND" in str(exc):
        return INPUT_MISSING
    return INFRASTRUCTURE
