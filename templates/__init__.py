"""Jinja templates for config.pbtxt and the Python-backend model files copied into repositories."""
