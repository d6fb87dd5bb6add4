"""What a served model takes and where its limits are.

Its inputs (TEXT or token ids), its batch and length limits, and the requests of each point built to fit them
before any load is sent.
"""
