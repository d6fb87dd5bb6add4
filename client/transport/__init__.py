"""Talking to Triton.

Typed text clients (sync and asyncio, gRPC and HTTP), and the server's own statistics and GPU metrics.
"""
