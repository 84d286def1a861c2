"""The H&E dock's training sections: legacy-ST files, a Visium ``outs/`` folder or ``.h5ad``, or the spots layer of
a sample open in napari. Collects them (checked as they are added) and reads them in the dock's worker."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, Label, PushButton

from .fields import path_or_none

ST, VISIUM_DIR, VISIUM_H5AD = "Legacy ST files", "10x Visium outs/ folder", "Visium AnnData (.h5ad)"
OPEN = "An open sample (its spots layer)"


def read_picked(spec: tuple):
    """The section AnnData of a picked section: ``("layer", name, AnnData)`` an open sample's as it is; else
    :func:`~..io.detect.read_section`'s arguments: (counts, spots, H&E) legacy ST, (outs/ or .h5ad, None, H&E or
    None) Visium."""
    from ..io.detect import read_section

    return spec[2] if spec[0] == "layer" else read_section(*spec)


def section_name(spec: tuple) -> str:
    """A short name of a training section for the dock's list: the counts file's, the Visium folder's or the
    spots layer's."""
    if spec[0] == "layer":
        return str(spec[1])
    path = Path(spec[0])
    if spec[1] is None and path.is_dir():
        return path.parent.name if path.name == "outs" else path.name
    return path.name.split(".")[0]


class SectionPicker:
    """The widgets that pick training sections (hidden until shown) and the sections picked (``sections``)."""

    def __init__(self, viewer, status: Label):
        self.viewer, self.status = viewer, status
        self.sections: list[tuple] = []  # read_section's arguments (legacy ST, Visium), or ("layer", name, AnnData)
        self.format = ComboBox(label="Section files", choices=[ST, VISIUM_DIR, VISIUM_H5AD, OPEN], value=ST,
                               visible=False, tooltip="Legacy ST (her2st layout): counts TSV, spot selection TSV and "
                               "H&E. 10x Visium: the spaceranger outs/ folder (or a scanpy-layout .h5ad) and, "
                               "optionally, the full-resolution H&E (else the hires PNG). An open sample: the spots "
                               "layer of a Visium / ST folder opened in napari.")
        self.open_spots = ComboBox(label="Spots layer", choices=self._layer_choices, visible=False,
                                   tooltip="A spots layer of a Visium or legacy-ST sample opened with this plugin "
                                           "(it holds the counts and the H&E's path).")
        self.counts_file = FileEdit(label="Counts TSV", mode="r", visible=False)
        self.spots_file = FileEdit(label="Spots TSV", mode="r", visible=False)
        self.visium_path = FileEdit(label="Visium outs/", mode="d", visible=False,
                                    tooltip="The spaceranger outs/ folder (or the folder above it).")
        self.image_file = FileEdit(label="H&E image", mode="r", visible=False)
        self.add_button = PushButton(text="Add section", visible=False)
        self.clear_button = PushButton(text="Clear sections", visible=False)
        self.label = Label(label="Sections", value="none", visible=False)
        self.format.changed.connect(lambda _v=None: self.show(True))
        self.add_button.changed.connect(self.add)
        self.clear_button.changed.connect(self.clear)

    @property
    def widgets(self) -> list:
        """In the dock's order."""
        return [self.format, self.counts_file, self.spots_file, self.visium_path, self.open_spots, self.image_file,
                self.add_button, self.clear_button, self.label]

    def show(self, train: bool) -> None:
        """Show the widgets of the chosen kind of section (none unless ``train``)."""
        for w in (self.format, self.add_button, self.clear_button, self.label):
            w.visible = train
        kind = self.format.value
        st, layer = kind == ST, kind == OPEN
        self.counts_file.visible = self.spots_file.visible = train and st
        self.visium_path.visible = train and not st and not layer
        self.image_file.visible = train and not layer
        self.open_spots.visible = train and layer
        if layer:
            self.open_spots.reset_choices()
        self.visium_path.mode = "d" if kind == VISIUM_DIR else "r"
        self.visium_path.label = "Visium outs/" if kind == VISIUM_DIR else "Visium .h5ad"
        self.image_file.label = "H&E image" if st else "Full-res H&E (optional)"

    def _layer_choices(self, _w=None) -> list[str]:
        """Points layers holding a spot section with its H&E (``uns["histology"]``): Visium / ST samples."""
        from ..layers.cells import cells_layer_names

        return [n for n in cells_layer_names(self.viewer)
                if "histology" in getattr(self.viewer.layers[n].metadata["adata"], "uns", {})]

    def add(self, _value=None) -> None:
        """Add the picked files (read in the worker when training starts) or open sample as a training section."""
        image = path_or_none(self.image_file)
        kind = self.format.value
        if kind == OPEN:
            name = self.open_spots.value
            if not name or name not in self.viewer.layers:
                self.status.value = "open a Visium or ST folder with this plugin, then pick its spots layer"
                return
            adata = self.viewer.layers[name].metadata["adata"]
            if any(s[0] == "layer" and s[2] is adata for s in self.sections):
                self.status.value = f"{name} is a training section already"
                return
            self.sections.append(("layer", name, adata))
        elif kind == ST:
            files = [str(w.value) for w in (self.counts_file, self.spots_file, self.image_file)]
            if not all(f and Path(f).is_file() for f in files):
                self.status.value = "pick the counts, spots and image files of a section first"
                return
            if tuple(files) in self.sections:
                self.status.value = f"{Path(files[0]).name} is a training section already"
                return
            self.sections.append(tuple(files))
        else:
            path = path_or_none(self.visium_path)
            folder = kind == VISIUM_DIR
            if path is None or not (path.is_dir() if folder else path.is_file() and path.suffix == ".h5ad"):
                self.status.value = ("pick the spaceranger outs/ folder first" if folder else
                                     "pick a Visium .h5ad (scanpy layout) first")
                return
            if image is not None and not image.is_file():
                self.status.value = f"the H&E image {image} does not exist"
                return
            entry = (str(path), None, str(image) if image else None)
            if entry in self.sections:
                self.status.value = f"{path.name} is a training section already"
                return
            self.sections.append(entry)
        self.label.value = ", ".join(section_name(s) for s in self.sections)
        self.status.value = f"{len(self.sections)} training section(s)"

    def clear(self, _value=None) -> None:
        """Forget the training sections added (a model trained on them stays loaded until the next training)."""
        self.sections = []
        self.label.value = "none"
        self.status.value = "no training section"

    def key(self) -> tuple:
        """What the sections are, for reusing a model trained on them (an open sample by its AnnData's identity:
        AnnData refuses ==; the key holds the object, so its id is never reused by another)."""
        return tuple(("layer", s[1], _Same(s[2])) if s[0] == "layer" else s for s in self.sections)


class _Same:
    """Equal to another only when holding the very same object."""

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)
