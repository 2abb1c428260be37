"""Routing core: model registry, GPU-aware selector and the selection log."""
