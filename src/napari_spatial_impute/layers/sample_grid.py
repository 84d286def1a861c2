"""Measured vs imputed side by side for one sample (:meth:`.sample_view.SampleView.grid`): two panels in napari's
grid view, each titled with its kind and unit, with its colorbar, over a copy of the sample's image."""

from __future__ import annotations

import numpy as np

from .colors import contrast_limits
from .paint import LEGEND_POSITION, PAINT_KWARGS_NO_UNITS, UM, paint_values, show_title, values_rgba


def show_grid(view, gene: str | None) -> list:
    """For a :class:`~.sample_view.SampleView`, side by side: ``gene`` measured | imputed (same colormap and
    contrast), each panel titled with its kind and unit, with its colorbar, over a copy of the sample's visible
    image (same data, no memory); ``None`` restores the view."""
    for ly in [ly for ly in view.viewer.layers if ly.metadata.get("grid_of") is not None]:
        view.viewer.layers.remove(ly)
    for ly in view.grid_hidden:
        if ly in view.viewer.layers:
            ly.visible = True
    view.grid_hidden = []
    view.viewer.grid.enabled = False
    if gene is None:
        if view.current is not None:  # the single view's title and legend again
            show_title(view.viewer, view.current.title)
            view.legend(view.current)
        return []
    measured, imputed = view.colouring(f"measured:{gene}"), view.colouring(f"imputed:{gene}")
    both = np.r_[measured.values, imputed.values]
    clim = contrast_limits(both)
    background = grid_background(view.viewer)
    made, panels = [], []
    for c in (measured, imputed):
        label = "measured" if c is measured else "imputed"
        title = f"{gene} {label} · {c.unit.split(' (')[0]}"
        meta = {"grid_of": gene, "unit": c.unit}
        panel = []
        if background is not None:
            kw = {k: background[k] for k in ("scale", "translate", "colormap", "contrast_limits", "rgb",
                                             "multiscale", "blending")}
            panel.append(view.viewer.add_image(background["data"], name=f"{gene} {label}: image",
                                               metadata=dict(meta, grid_image=True), units=UM, **kw))
        if view.masks:
            for pm in view.masks:
                ly = view.viewer.add_image(paint_values(pm, c.values),
                                           name=title if len(view.masks) == 1 else f"{title} ({pm.name})",
                                           scale=pm.scale, translate=pm.translate, colormap=view.cmap,
                                           contrast_limits=clim, metadata=meta, units=UM, **PAINT_KWARGS_NO_UNITS)
                ly.colorbar.position = LEGEND_POSITION
                ly.colorbar.visible = True
                panel.append(ly)
        else:
            ly = view.viewer.add_points(np.asarray(view.cells.data), name=title,
                                        size=np.array(view.cells.size), border_width=0,
                                        border_color="transparent",
                                        scale=tuple(view.cells.scale), translate=tuple(view.cells.translate),
                                        face_color=values_rgba(c.values, view.cmap, clim), metadata=meta,
                                        units=UM)
            if getattr(ly, "face_colorbar", None) is not None:  # colours as RGBA; colormap + limits: the bar
                ly.face_colormap, ly.face_contrast_limits = view.cmap, tuple(float(v) for v in clim)
                ly.face_colorbar.position = LEGEND_POSITION
                ly.face_colorbar.visible = True
            panel.append(ly)
        name_overlay = getattr(panel[-1], "name_overlay", None)  # napari ≥ 0.6: the panel's title on canvas
        if name_overlay is not None:
            name_overlay.position = LEGEND_POSITION
            name_overlay.visible = True
        made += panel
        panels.append(panel)
    layers = view.viewer.layers
    for i, ly in enumerate(made):  # panels first, in order: napari groups layers ``stride`` by ``stride``
        if layers.index(ly) != i:
            layers.move(layers.index(ly), i)
    view.grid_hidden = [ly for ly in layers if ly.visible and ly not in made]
    for ly in view.grid_hidden:
        ly.visible = False
    view.viewer.grid.stride = len(panels[0])
    view.viewer.grid.shape = (1, 2)  # side by side
    view.viewer.grid.enabled = True
    view.viewer.text_overlay.visible = False  # each panel has its own title (gene, measured / imputed, unit)
    view.legend_rows_off()
    return made


def grid_background(viewer) -> dict | None:
    """The sample's topmost visible image (DAPI, H&E, …) as ``add_image`` arguments sharing its data."""
    for ly in reversed(list(viewer.layers)):
        md = ly.metadata
        if (type(ly).__name__ == "Image" and ly.visible and md.get("painted_from") is None
                and md.get("grid_of") is None):
            return {"data": ly.data, "scale": tuple(ly.scale), "translate": tuple(ly.translate),
                    "colormap": ly.colormap if not ly.rgb else None, "contrast_limits": ly.contrast_limits,
                    "rgb": ly.rgb, "multiscale": ly.multiscale, "blending": "translucent_no_depth"}
    return None
