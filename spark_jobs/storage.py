"""Driver-side file operations on the output through Hadoop's FileSystem (so every URI Spark
writes to - file:, hdfs:, s3a:, abfss:, gs: - works, with Spark's own credentials).

Only small metadata passes here (directory listings, run records); data goes through Spark.
This is the one module that reaches into the JVM: PySpark has no public file system API.
"""

from __future__ import annotations

from pyspark.sql import SparkSession


class Storage:
    def __init__(self, spark: SparkSession):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        path, fs = self._path(uri)
        return bool(fs.exists(path))

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

    def delete(self, uri: str) -> None:
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
        path, fs = self._path(uri)
        tmp = self._jvm.org.apache.hadoop.fs.Path(path.getParent(), "." + path.getName() + ".tmp")
        stream = fs.create(tmp, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        fs.delete(path, False)
        if not fs.rename(tmp, path):
            raise OSError(f"could not rename {tmp} to {uri}")

    def replace_dir(self, source: str, target: str) -> None:
        """Move directory ``source`` to ``target``, replacing ``target`` (one rename)."""
        src, fs = self._path(source)
        dst, _ = self._path(target)
        fs.delete(dst, True)
        fs.mkdirs(dst.getParent())
        if not fs.rename(src, dst):
            raise OSError(f"could not move {source} to {target}")
