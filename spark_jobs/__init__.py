"""Spark job entry points of spark-image-etl: arguments, session, reading, writing."""

__version__ = "0.1.0"
