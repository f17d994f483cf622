"""Adapter methods, one folder each (config, layer, model kept apart)."""
