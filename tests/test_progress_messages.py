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


def test_worker_progress_moves_napari_activity_bar():
    """A worker's progress event moves napari's progress object (its value event: the activity dock's bar)
    and gives it the shortened message."""
    from types import SimpleNamespace

    from napari.utils import progress

    from napari_spatial_impute._widgets._worker import RunsInWorker
    from napari_spatial_impute.progress import Progress

    bar = progress(total=100)
    values = []
    bar.events.value.connect(lambda e: values.append(e.value))
    w = SimpleNamespace(progress_bar=SimpleNamespace(value=0), status=SimpleNamespace(value=""), _progress=bar)
    try:
        RunsInWorker._on_progress(w, Progress(33, 100, "validation: section 3 held out, contrastive heads: "
                                                       "epoch 4/30", "validate"))
        assert bar.n == 33 and values[-1] == 33 and w.progress_bar.value == 33
        assert bar.desc.startswith("validation") and "epoch 4/30" in bar.desc
        RunsInWorker._on_progress(w, Progress(80, 100, "train", "train"))
        assert values[-1] == 80
    finally:
        bar.close()


def test_cli_bar_redraws_at_most_every_tenth_of_a_second(capsys):
    """The CLI's bar (stderr, often a log file) draws one line per redraw, and redraws at most every 0.1 s:
    thousands of fast events do not fill a log; the last state is drawn when the bar closes."""
    import re

    from napari_spatial_impute.progress import Progress, tqdm_callback

    cb, close = tqdm_callback("predict")
    for i in range(2000):
        cb(Progress(i, 2000, f"tile batch {i + 1}/2000", "predict"))
    close()
    drawn = re.split(r"[\r\n]", capsys.readouterr().err)
    bars = [d for d in drawn if d.startswith("predict")]
    assert 1 <= len(bars) < 200, len(bars)  # 2,000 events in well under 20 s
    assert any("100/100" in d for d in bars)
