"""Hadoop's path globs (``*``, ``?``, ``[abc]``, ``{a,b}``, ``\\`` escapes), as Spark applies
them to every path it reads: matched here, and escaped where a name is meant literally."""

from __future__ import annotations

import re

GLOB_CHARS = re.compile(r"[*?\[\]{}\\]")  # special in Hadoop's path globs


def glob_escape(path: str) -> str:
    """A file name made literal for Spark's path globbing (which treats *?[]{} specially)."""
    return GLOB_CHARS.sub(r"\\\g<0>", path)


def glob_regex(glob: str) -> re.Pattern:
    """A Hadoop file-name glob (*, ?, [abc], {a,b}) as a compiled regular expression."""
    out, depth, i = [], 0, 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.index("]", i + 1)
            body = glob[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else re.escape(body).replace("\\-", "-")) + "]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def split_glob(uri: str) -> tuple[str, str]:
    """(the leading folders of ``uri`` free of glob characters, unescaped; the rest, a glob:
    '' if none). A character after a backslash is literal (``photos \\[2024\\]``)."""
    i, cut = 0, None
    while i < len(uri):
        if uri[i] == "\\":
            i += 2
            continue
        if uri[i] in "*?[{":
            cut = uri.rfind("/", 0, i)
            break
        i += 1
    if cut is None:
        return unescape(uri), ""
    return unescape(uri[:cut]), uri[cut + 1:]


def join_glob(root: str, pattern: str) -> str:
    """``split_glob``'s two parts joined again: the literal folder ``root``, escaped, with the
    glob ``pattern`` below it."""
    prefix = glob_escape(root.rstrip("/"))
    return prefix + "/" + pattern if pattern else prefix


def unescape(glob: str) -> str:
    """The literal name an escaped glob stands for (``photos \\[1\\]`` -> ``photos [1]``)."""
    return re.sub(r"\\(.)", r"\1", glob, flags=re.DOTALL)
