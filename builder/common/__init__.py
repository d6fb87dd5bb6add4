"""Leaf utilities that both the builder and the client use: errors, versions, the text corpus, CLI plumbing.

Nothing here imports from the rest of `builder` (a test checks it), so the client can use it without
reaching into the builder.
"""
