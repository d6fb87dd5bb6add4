"""Experiments that compose both packages.

`tritonbench study` builds every variant with the builder's make-repo and measures it in process and served.
These modules are the one place in client/ that may import more of the builder than builder.common and
builder.contract (tests/test_imports.py).
"""
