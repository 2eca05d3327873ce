"""The op registry (primitives, defined once each) and the operations built on it.

This package's __init__ imports nothing, so that the registry (and any one op module) can be
imported on its own; `import graphc` imports ops/library.py, which registers every primitive.
"""
