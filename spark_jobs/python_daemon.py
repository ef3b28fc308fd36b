"""Spark's Python daemon for local runs, importing PySpark's compiled, installed modules.

Spark puts ``$SPARK_HOME/python/lib/pyspark.zip`` first on its Python workers' path. The zip
holds sources only, so every daemon and worker start compiles PySpark again: importing what
a worker needs takes 0.48 s from the zip, 0.10 s from the installed package. When the zip is
the installed package's own copy (``pip install pyspark``: SPARK_HOME is that package), this
daemon drops it from the path before importing PySpark; otherwise nothing changes. Workers
are forked from the daemon and inherit its path and modules.

Used as ``spark.python.daemon.module`` by sessions that session.py builds in local mode.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _own_zip(entry: str) -> bool:
    """Whether a sys.path entry is the pyspark.zip shipped inside the installed package."""
    if not entry.endswith("pyspark.zip"):
        return False
    rest = [p for p in sys.path if p != entry]
    saved, sys.path[:] = sys.path[:], rest
    try:
        spec = importlib.util.find_spec("pyspark")
    finally:
        sys.path[:] = saved
    if spec is None or not spec.submodule_search_locations:
        return False
    own = os.path.join(spec.submodule_search_locations[0], "python", "lib", "pyspark.zip")
    return os.path.exists(own) and os.path.samefile(entry, own)


def main() -> None:
    sys.path[:] = [p for p in sys.path if not (os.path.exists(p) and _own_zip(p))]
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
