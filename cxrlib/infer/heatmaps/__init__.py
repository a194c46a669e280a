"""Heatmap methods as plug-ins, one module each, listed in :data:`cxrlib.core.methods.REGISTRY`."""
