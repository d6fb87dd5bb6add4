"""Clients and load generation for Triton text models built by tritonbuild."""
