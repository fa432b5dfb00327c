"""Root conftest: makes the repository importable without installing it.

The benchmark plugin itself is registered through ``addopts = -p bench.plugin`` in
pyproject.toml, so ``pytest bench/`` and ``pytest tests/`` both see its options.
"""
