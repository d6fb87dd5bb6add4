"""Python-backend model files; each runs inside tritonserver's Python backend stub."""
