"""Serving a repository locally with the tritonserver bundled in nvidia-pytriton.

server.py starts it as a context manager and refuses what the bundle cannot run; supervisor.py reloads a
model whose backend stub died (stubs.py finds the stubs in /proc); server_log.py picks what of a failed
server's log to show; endpoints.py names the ports, paths and flags that the deploy manifests share.
replicas.py runs N servers behind one nginx (nginx.py: the process; balancer_plan.py: its config as data).
"""
