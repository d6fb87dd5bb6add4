"""Talking to Triton.

Typed text clients (sync and asyncio, gRPC and HTTP), the servers a sweep talks to (several URLs, or a
balancer's replicas: replicas.py), and the servers' own statistics and GPU metrics.
"""
