"""Thin spark-submit entrypoints plus the shared session builder and lakehouse I/O."""
