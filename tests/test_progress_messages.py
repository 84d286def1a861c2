"""Progress messages shortened for a bar keep their start and their counts."""

from __future__ import annotations


def test_long_messages_are_cut_in_the_middle_not_at_the_count():
    from napari_spatial_impute.progress import shorten

    msg = "validation: section 3 held out, contrastive heads: epoch 4/30"
    assert shorten(msg, 80) == msg
    for width in (50, 60):
        short = shorten(msg, width)
        assert len(short) == width and short.endswith("epoch 4/30") and short.startswith("validation: sec")
        assert "…" in short
