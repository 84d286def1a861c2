"""npe2 reader: instrument folders (Xenium, CosMx, MERSCOPE, Visium / ST) and .h5ad → aligned layers; a result
saved by the plugin (``uns["napari_spatial_impute"]``, .h5ad or .zarr) opens as cells coloured by its imputed values.

``get_reader`` only looks at file names (cheap, never raises): ``None`` for a path it cannot read. The returned
function reads the sample and builds layers; on bad input it shows napari's error notification naming the file
and returns ``[]`` — it never raises into the viewer. Content it can open but not trust (e.g. spots outside the
H&E image, an image of another section) opens anyway, with each reader warning shown as a napari warning
notification. Importable without Qt.
"""

from __future__ import annotations

from pathlib import Path


def get_reader(path):
    """npe2 ``get_reader``: a reader function for a supported path, else None."""
    try:
        if isinstance(path, list | tuple):
            if len(path) != 1:
                return None
            path = path[0]
        from .io.detect import detect_platform, is_saved_result

        if is_saved_result(path):  # an imputation result saved by the plugin: its genes are imputed values
            return read_result_layers
        platform = detect_platform(Path(str(path)))
        if platform == "spatialdata":
            import importlib.util

            if importlib.util.find_spec("spatialdata") is None:
                return None
    except Exception:  # noqa: BLE001 - get_reader must never raise
        return None
    if platform is None:
        return None
    return read_layers


def read_layers(path, *, saved_result: bool | None = None) -> list:
    """Read ``path`` into layer-data tuples (µm world); bad input → notification + ``[]``. ``saved_result``:
    whether it is a result saved by the plugin (None: look)."""
    import warnings

    try:
        if isinstance(path, list | tuple):
            path = path[0]
        from .io.detect import is_saved_result, read_sample
        from .layers import sample_to_layers
        from .layers.results import saved_result_layers

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if saved_result if saved_result is not None else is_saved_result(path):
                layers = saved_result_layers(path)
            else:
                sample = read_sample(path)
                layers = sample_to_layers(sample)
        for message in dict.fromkeys(str(w.message) for w in caught
                                         if "napari_spatial_impute" in str(w.filename)):
            _notify(f"{Path(str(path)).name}: {message}", warning=True)
        return layers
    except Exception as err:  # noqa: BLE001 - never crash the viewer
        from .errors import InputError

        msg = str(err) if isinstance(err, InputError) else (
            f"napari-spatial-impute could not open {path}: {type(err).__name__}: {err}")
        _notify(msg)
        return []


def read_result_layers(path) -> list:
    """:func:`read_layers` for a path :func:`get_reader` already found to be a saved result (not opened twice)."""
    return read_layers(path, saved_result=True)


def _notify(message: str, *, warning: bool = False) -> None:
    """napari's error (or warning) notification; without napari, the log."""
    try:
        from napari.utils.notifications import show_error, show_warning

        (show_warning if warning else show_error)(message)
    except Exception:  # noqa: BLE001 - no napari (plain Python): log instead
        import logging

        logging.getLogger(__name__).log(logging.WARNING if warning else logging.ERROR, message)
