"""The files Spark's listing drops, found through pyarrow.fs: 0-byte files (Spark's file
index holds them, its scan drops them) and local names that are not UTF-8 (Java cannot name
them). Also whether pyarrow reaches the inputs at all, as the Python workers need it to."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import quote

from spark_jobs.exit_codes import first_line
from spark_jobs.globs import glob_regex, join_glob, split_glob

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Dropped(NamedTuple):
    """(path, length, modificationTime) rows of the files Spark's listing drops."""

    empty: list[tuple]  # 0-byte files (Spark's file index holds them; its scan drops them)
    unnamable: list[tuple]  # local files whose names are not UTF-8 (see _unnamable_files)
    unlisted: list[str]  # inputs pyarrow could not list (their empty files are not in ``empty``)


def dropped_files(inputs: list[str], glob: str) -> Dropped:
    """The files Spark's listing drops, named as Spark names paths, found with pyarrow.fs
    (local, HDFS, S3, GCS, Azure); the inputs it cannot list are returned as ``unlisted``.

    Inputs are matched as Spark matches them: a glob in an input (``/lake/*/2024``) selects
    files and folders, searched recursively; names starting with '.' below them are skipped.
    """
    from pyarrow import fs

    empty, unnamable, unlisted = {}, {}, []  # by path: inputs may overlap
    for uri in inputs:
        scheme = uri.split("://", 1)[0] if "://" in uri else "file"
        base, pattern = split_glob(uri)
        try:
            filesystem, root, info = _pyarrow_root(base)
            infos = (
                filesystem.get_file_info(fs.FileSelector(root, recursive=True))
                if info.type == fs.FileType.Directory else [info]
            )
        except Exception as e:  # noqa: BLE001 - Spark's own listing stays authoritative
            log.info("pyarrow cannot list %s (%s)", uri, first_line(e))
            unlisted.append(uri)
            continue
        taken = _taken(root, pattern, glob)
        undecodable = False
        for f in infos:
            if f.type != fs.FileType.File:
                continue
            try:
                path = f.path
            except UnicodeDecodeError:  # pyarrow cannot name it either
                undecodable = True
                continue
            if f.size == 0 and taken(path):
                path = f"file:{path}" if scheme == "file" else f"{scheme}://{path}"
                empty[path] = (path, 0, f.mtime)
        if undecodable and scheme == "file":
            unnamable.update((row[0], row) for row in _unnamable_files(root, taken))
    if unnamable:
        log.warning("%d file(s) have names that are not UTF-8, which Spark cannot open (rename "
                    "them): their rows name them with \\x escapes and say unreadable (or empty)",
                    len(unnamable))
    return Dropped(list(empty.values()), list(unnamable.values()), unlisted)


def _taken(root: str, pattern: str, glob: str):
    """path -> whether Spark's listing of ``root`` + ``pattern`` with ``glob`` takes it."""
    name_ok = (lambda name: True) if glob == "*" else glob_regex(glob).match
    matched = _matched_input(root, pattern)

    def taken(path: str) -> bool:
        top = matched(path)
        return (top is not None and bool(name_ok(path.rsplit("/", 1)[-1]))
                and not any(p.startswith(".") for p in path[len(top):].split("/") if p))

    return taken


def _unnamable_files(root: str, taken) -> list[tuple]:
    """Rows for the files under local folder ``root`` whose names are not UTF-8 (legacy
    encodings, archives unpacked as-is): Java, so Hadoop and Spark, cannot name them and
    its listing silently drops them. Each is named here with backslash escapes for the
    bytes that are not UTF-8 (as `ls -b` shows them): no reader can open that name, so the
    file gets an ``unreadable`` row (an ``empty`` one if it has no bytes) instead of none."""
    import os

    rows = []
    # A driver-side walk, but only of a local input in which pyarrow met such a name: no
    # other listing (Hadoop's, pyarrow's) can name these files at all.
    for folder, _, names in os.walk(os.fsencode(root)):
        for name in names:
            raw = os.path.join(folder, name)
            try:
                raw.decode()
                continue
            except UnicodeDecodeError:
                pass
            path = raw.decode(errors="backslashreplace")
            if taken(path):
                try:
                    st = os.stat(raw)
                except OSError:  # gone since os.walk saw it
                    continue
                mtime = EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
                rows.append((f"file:{path}", st.st_size, mtime))
    return rows


def _matched_input(root: str, pattern: str):
    """path -> the input it lies under (itself or a folder above it), None if none: ``root``
    itself when there is no glob ``pattern``, else the ancestor the pattern matches."""
    if not pattern:
        return lambda path: root
    regex = glob_regex(join_glob(root, pattern))
    depth = root.rstrip("/").count("/") + 1

    def matched(path: str) -> str | None:
        parts = path.split("/")
        for i in range(depth + 1, len(parts) + 1):
            if regex.match(top := "/".join(parts[:i])):
                return top
        return None

    return matched


def _pyarrow_root(uri: str):
    """(pyarrow file system, path, FileInfo) of an input named as Spark names it."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(_pyarrow_uri(uri))
    return filesystem, root, filesystem.get_file_info(root)


def _pyarrow_uri(uri: str) -> str:
    """An input named as Spark names it (not percent-encoded: 'My Photos') as the URI pyarrow
    parses (percent-encoded: pyarrow refused a space or a brace, and missed the empty files)."""
    if uri.startswith("file:") or "://" not in uri:
        path = uri[5:] if uri.startswith("file:") else uri
        return "file://" + quote("/" + path.lstrip("/"), safe="/")
    scheme, rest = uri.split("://", 1)
    authority, _, path = rest.partition("/")
    scheme = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}.get(scheme, scheme)
    return f"{scheme}://{authority}/{quote(path, safe='/')}"


def python_can_read(inputs: list[str], warn: bool = True) -> bool:
    """Whether pyarrow's file systems reach every input from here (one metadata request
    each): the Python workers read files through them (udfs.spark_udf.read_uri). ``warn``
    says what a negative answer means for reading (once a run: with_content asks first)."""
    for uri in inputs:
        try:
            _pyarrow_root(uri)
        except Exception as e:  # noqa: BLE001 - no credentials, no libhdfs, unknown scheme...
            if warn:
                log.warning("pyarrow cannot reach %s (%s): Spark reads every file up to "
                            "--max-file-bytes, and a file needs several times its size of "
                            "executor heap", uri, first_line(e))
            return False
    return True
