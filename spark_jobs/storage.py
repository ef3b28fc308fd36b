"""Driver-side file operations on the output through Hadoop's FileSystem (so every URI Spark
writes to - file:, hdfs:, s3a:, abfss:, gs: - works, with Spark's own credentials).

Only small metadata passes here (directory listings, run records); data goes through Spark.
This is the one module that reaches into the JVM: PySpark has no public file system API.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

# The prefix of a directory replace_dir moved aside: a name starting with '.' is skipped by
# Spark's listing (one starting with '_' is not when it holds '=', as run_id=... does).
ASIDE = ".replaced."


class Storage:
    def __init__(self, spark: SparkSession):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        # Called before every change to the output (delete, write, move): the output lock
        # raises there once another run has taken the output over.
        self.before_change: Callable[[], None] = lambda: None

    def _path(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        path, fs = self._path(uri)
        return bool(fs.exists(path))

    def default_scheme(self) -> str:
        """The scheme of the default file system (fs.defaultFS): 'file', or 'hdfs' on most
        clusters, where a path without a scheme names a file there."""
        return str(self._jvm.org.apache.hadoop.fs.FileSystem.getDefaultUri(self._conf).getScheme() or "file")

    def working_directory(self) -> str:
        """Where the default file system resolves relative paths: /user/<name> on HDFS."""
        return str(self._jvm.org.apache.hadoop.fs.FileSystem.get(self._conf).getWorkingDirectory().toString())

    def qualify(self, uri: str) -> str:
        """``uri`` as Spark's listing names what lies under it: /x -> file:/x (or
        hdfs://namenode:8020/x where that is the default file system)."""
        path, fs = self._path(uri)
        return str(fs.makeQualified(path).toString())

    def list_dir(self, uri: str) -> list[str]:
        """Names of the entries of a directory ([] when it does not exist)."""
        path, fs = self._path(uri)
        if not fs.exists(path):
            return []
        return sorted(status.getPath().getName() for status in fs.listStatus(path))

    def modified_ms(self, uri: str) -> int | None:
        """A file's modification time (ms since the epoch, the file system's clock), None
        when it does not exist."""
        status = self.length_and_modified_ms(uri)
        return None if status is None else status[1]

    def length_and_modified_ms(self, uri: str) -> tuple[int, int] | None:
        """A file's length and modification time (ms since the epoch), None when it does
        not exist."""
        path, fs = self._path(uri)
        try:
            status = fs.getFileStatus(path)
        except Py4JJavaError as e:
            if self._raised(e, "java.io.FileNotFoundException"):
                return None
            raise
        return int(status.getLen()), int(status.getModificationTime())

    def clock_ms(self, folder: str) -> int:
        """The file system's time now (ms since the epoch): the modification time of a file
        written for the purpose, so that times compared with modified_ms's are one clock's
        (the driver's may be off the store's)."""
        path, fs = self._path(f"{folder}/._clock.{secrets.token_hex(8)}")
        self._write(fs.create(path, True), b"")
        try:
            return int(fs.getFileStatus(path).getModificationTime())
        finally:
            fs.delete(path, False)

    def create_new(self, uri: str, data: bytes) -> bool:
        """Write a file that must not exist yet; False when it does. Atomic where the file
        system's create-if-absent is (HDFS; object-store connectors that make it a
        conditional write, which Hadoop 3.4+ connectors do through this builder call) and on
        local disks (O_EXCL); elsewhere a check, then a create."""
        path, fs = self._path(uri)
        if fs.getScheme() == "file":
            return self._create_new_local(str(fs.pathToFile(path).getAbsolutePath()), data)
        try:
            stream = fs.createFile(path).overwrite(False).recursive().build()
        except Py4JJavaError as e:
            # also raised when a parent is a file ("Destination exists and is not a directory")
            if self._raised(e, "org.apache.hadoop.fs.FileAlreadyExistsException") and fs.exists(path):
                return False
            raise
        self._write(stream, data)
        return True

    @staticmethod
    def _create_new_local(local: str, data: bytes) -> bool:
        """create_new on a local disk: Hadoop's local file system checks, then creates, so two
        runs could both pass (5 of 100 races of 4 threads did); O_EXCL cannot."""
        folder, name = os.path.split(local)
        os.makedirs(folder, exist_ok=True)
        try:
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # Hadoop verifies a local file against its checksum file when there is one: remove a
        # stale one (left by a file deleted by hand), or this file would read as corrupt
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, f".{name}.crc"))
        return True

    def overwrite(self, uri: str, data: bytes) -> None:
        """Rewrite a small file in place: it never disappears in between (unlike write_bytes)."""
        path, fs = self._path(uri)
        self._write(fs.create(path, True), data)

    def remove(self, uri: str) -> None:
        """Delete one file, outside the before_change check (the lock's own file)."""
        path, fs = self._path(uri)
        fs.delete(path, False)

    def _raised(self, error: Py4JJavaError, java_class: str) -> bool:
        """Whether the JVM raised ``java_class`` (or a subclass of it)."""
        return bool(self._jvm.java.lang.Class.forName(java_class).isInstance(error.java_exception))

    @staticmethod
    def _write(stream, data: bytes) -> None:
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def delete(self, uri: str) -> None:
        self.before_change()
        path, fs = self._path(uri)
        fs.delete(path, True)

    def read_text(self, uri: str) -> str:
        path, fs = self._path(uri)
        stream = fs.open(path)
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode()
        finally:
            stream.close()

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode())

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a small file whole: to a temporary name first, then renamed over the target."""
        self.before_change()
        path, fs = self._path(uri)
        tmp = self._jvm.org.apache.hadoop.fs.Path(path.getParent(), "." + path.getName() + ".tmp")
        self._write(fs.create(tmp, True), data)
        fs.delete(path, False)
        if not fs.rename(tmp, path):
            raise OSError(f"could not rename {tmp} to {uri}")

    def replace_dir(self, source: str, target: str) -> None:
        """Move directory ``source`` to ``target``, replacing ``target``. An existing target
        is first renamed aside (ASIDE + its name, which Spark and our readers skip) and
        deleted once the new one is in place: a run killed in between leaves both, and
        ``finish_replaces`` puts the old one back, so a failed rerun of a committed run id
        never loses that run."""
        self.before_change()
        src, fs = self._path(source)
        dst, _ = self._path(target)
        aside = self._jvm.org.apache.hadoop.fs.Path(dst.getParent(), ASIDE + dst.getName())
        self._finish_replace(fs, dst, aside)
        fs.mkdirs(dst.getParent())
        moved = bool(fs.exists(dst))
        if moved and not fs.rename(dst, aside):
            raise OSError(f"could not move {target} aside to replace it")
        try:
            if not fs.rename(src, dst):
                raise OSError(f"could not move {source} to {target}")
        except BaseException:
            if moved:
                fs.rename(aside, dst)
            raise
        fs.delete(aside, True)

    def finish_replaces(self, folder: str) -> list[str]:
        """Finish what replace_dir calls killed half-way left in ``folder``: an old directory
        moved aside goes back where its replacement never arrived, and is deleted where it
        did. Returns the names put back."""
        path, fs = self._path(folder)
        restored = []
        for name in self.list_dir(folder):
            if name.startswith(ASIDE):
                target = self._jvm.org.apache.hadoop.fs.Path(path, name[len(ASIDE):])
                if self._finish_replace(fs, target, self._jvm.org.apache.hadoop.fs.Path(path, name)):
                    restored.append(name[len(ASIDE):])
        return restored

    @staticmethod
    def _finish_replace(fs, target, aside) -> bool:
        """Delete ``aside`` if ``target`` arrived, else move it back; whether it moved back."""
        if not fs.exists(aside):
            return False
        if fs.exists(target):
            fs.delete(aside, True)
            return False
        if not fs.rename(aside, target):
            raise OSError(f"could not move {aside} back to {target}")
        return True
