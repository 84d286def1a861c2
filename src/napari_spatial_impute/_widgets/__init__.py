"""napari dock widgets (the only modules that import Qt / napari)."""
