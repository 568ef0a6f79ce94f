"""Export for teaching: plots and heatmaps as PNG + CSV, stepper animations as PNG sequences or GIFs.

Functions for the main window's File → Export menu:
- :func:`export_plot` (one ``pg.PlotItem``/``PlotWidget``): PNG through pyqtgraph's ImageExporter, CSV
  with every curve's full data (``<name> x``, ``<name> y`` column pairs).
- :func:`export_heatmap` (one ``pg.ImageItem``): PNG of the image as drawn (its colour table and levels),
  enlarged by whole pixels so each value stays a crisp square, and CSV of the numbers (row 0 first, as
  drawn at the top of the views).
- :func:`export_view_data` (a whole view): the view's own ``export_png``/``export_csv`` if it has them,
  plus every plot and heatmap inside it.
- :func:`export_animation` / :func:`export_animation_dialog`: the conv stepper (its ``render_frame``),
  the pooling view's backward stepper (through :class:`PoolingFrames`) or the kernel timeline's replay
  (its ``animation_frames()``) frame by frame, with a cancellable progress dialog, as numbered PNG files
  or, when Pillow is installed (the optional ``export`` extra), as one animated GIF.

Curves are read with ``getOriginalDataset()``: ``getData()`` returns what is drawn, which is
downsampled and clipped to the visible range for long curves.
"""
from __future__ import annotations

import csv
import importlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6 import QtCore, QtGui, QtWidgets

from engine.atomic import atomic_write, new_file_mode
from engine.trace import STAGES

HEATMAP_MIN_SIDE = 280  # exported heatmaps are enlarged to at least this many pixels on their long side
GIF_COLOURS = 255       # one palette entry is left free: Pillow may need it for transparency


class FrameSource(Protocol):
    """Anything that paints numbered frames: the conv stepper itself, :class:`PoolingFrames`, the kernel
    timeline's frames. An optional ``fps`` attribute is the pace its animation plays at on screen."""

    def frame_count(self) -> int: ...

    def render_frame(self, index: int) -> QtGui.QImage: ...


# ---------------------------------------------------------------------- plots

def _plot_item(plot) -> pg.PlotItem:
    return plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot


def plot_curves(plot) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, x (n,), y (n,)) of every curve and bar chart with data in ``plot`` (a PlotWidget or
    PlotItem), in drawing order. Names come from the legend; unnamed or repeated names get a number.
    A bar drawn as a step (``stepMode="center"``: n + 1 edges for n values) is given at its centre."""
    result, seen = [], {}
    for k, item in enumerate(_plot_item(plot).listDataItems()):
        if isinstance(item, pg.PlotDataItem):
            x, y = item.getOriginalDataset()
            if item.opts.get("stepMode") in ("center", True) and x is not None and len(x) == len(y) + 1:
                x = (np.asarray(x[:-1], np.float64) + np.asarray(x[1:], np.float64)) / 2
        elif isinstance(item, pg.PlotCurveItem):  # never downsampled: what it draws is its data
            x, y = item.getData()
        elif isinstance(item, pg.BarGraphItem):   # bars of height y centred on x
            x, y = item.opts.get("x"), item.opts.get("height")
        else:
            continue
        if x is None or y is None or len(x) == 0:
            continue
        name = (item.opts.get("name") if isinstance(item, pg.BarGraphItem) else item.name()) or f"curve {k + 1}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        result.append((name, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))
    return result


def _number(v) -> str:
    """A cell that parses back to exactly the same float (repr is the shortest round-trip form)."""
    v = float(v)
    return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def write_curves_csv(path, curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """Curves ``(name, x: (n_i,), y: (n_i,))`` side by side: columns ``<name> x, <name> y`` per curve, a
    shorter curve's rows left empty (the layout of pyqtgraph's own CSV export). Returns the path."""
    path = os.fspath(path)
    rows = max((len(x) for _, x, _ in curves), default=0)
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([f"{name} {axis}" for name, _, _ in curves for axis in ("x", "y")])
        for i in range(rows):
            writer.writerow([_number(a[i]) if i < len(a) else "" for _, x, y in curves for a in (x, y)])
    return path


def _png_bytes(image: QtGui.QImage) -> bytes:
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if image.isNull() or not image.save(buffer, "PNG"):
        raise OSError("could not encode the image as PNG")
    return bytes(buffer.data())


KEPT = "Any earlier file of that name is unchanged."  # what a failed atomic save leaves


def write_failure(target: str, error: OSError, kept: str = KEPT) -> str:
    """The message of a save or an export that failed with ``error``: "Could not write <target>: <the
    reason in words>.", then ``kept`` (what is left as it was). The file is named once, by the caller:
    the reason is the error's strerror (engine.atomic and this module keep the file, links resolved, in
    its filename), not str(error), which adds "[Errno 13]" and the file, or os.replace's temporary file."""
    reason = error.strerror or str(error) or type(error).__name__
    return f"Could not write {target}: {reason}.\n\n{kept}"


def save_png(image: QtGui.QImage, path: str) -> str:
    """``image`` as a PNG file at ``path``, atomically: a full disk leaves any earlier file whole, and
    the OSError says why."""
    data = _png_bytes(image)
    with atomic_write(path, suffix=".png") as f:
        f.write(data)
    return path


def export_plot(plot, png_path, csv_path=None) -> list[str]:
    """PNG of ``plot`` (PlotWidget or PlotItem) as drawn, at its on-screen size, and (when
    ``csv_path`` is given) CSV of its curves. Returns the paths written."""
    item = _plot_item(plot)
    image = ImageExporter(item).export(toBytes=True)
    written = [save_png(image, os.fspath(png_path))]
    if csv_path is not None:
        written.append(write_curves_csv(csv_path, plot_curves(item)))
    return written


# ---------------------------------------------------------------------- heatmaps

def heatmap_values(item: pg.ImageItem) -> np.ndarray:
    """The numbers of a 2-D ImageItem as a (rows, cols) float64 array, row 0 = the image's first row."""
    data = np.asarray(item.image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"a heatmap is a 2-D image, this one has shape {data.shape}")
    return data.T if item.axisOrder == "col-major" else data


def heatmap_image(item: pg.ImageItem, scale: int | None = None) -> QtGui.QImage:
    """The ImageItem as drawn (its lookup table and levels; NaN transparent), each value enlarged to a
    ``scale`` x ``scale`` block (default: the smallest whole scale giving HEATMAP_MIN_SIDE pixels)."""
    item.render()
    if item.qimage is None:
        raise ValueError("the heatmap has no image yet")
    image = item.qimage.copy()
    if scale is None:
        scale = max(1, math.ceil(HEATMAP_MIN_SIDE / max(image.width(), image.height())))
    return image.scaled(image.width() * scale, image.height() * scale,
                        QtCore.Qt.AspectRatioMode.IgnoreAspectRatio, QtCore.Qt.TransformationMode.FastTransformation)


def write_matrix_csv(path, values: np.ndarray, row_labels: Sequence[str] | None = None,
                     col_labels: Sequence[str] | None = None, corner: str = "") -> str:
    """A 2-D array ``values: (rows, cols)`` as CSV: a header of column labels (default: the indices)
    after the corner cell (the row labels' heading), then one row per array row led by its label. NaN is
    written "nan"."""
    path = os.fspath(path)
    values = np.asarray(values)
    rows, cols = values.shape
    row_labels = [str(i) for i in range(rows)] if row_labels is None else list(row_labels)
    col_labels = [str(j) for j in range(cols)] if col_labels is None else list(col_labels)
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([corner] + col_labels)
        for label, row in zip(row_labels, values):
            writer.writerow([label] + [_number(v) if np.isfinite(v) else "nan" for v in row])
    return path


def export_heatmap(item: pg.ImageItem, png_path, csv_path=None, scale: int | None = None) -> list[str]:
    """PNG of the heatmap (see :func:`heatmap_image`) and, when ``csv_path`` is given, its numbers."""
    written = [save_png(heatmap_image(item, scale), os.fspath(png_path))]
    if csv_path is not None:
        written.append(write_matrix_csv(csv_path, heatmap_values(item)))
    return written


# ---------------------------------------------------------------------- whole views

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "item"


def _reading_order(item: QtWidgets.QGraphicsItem) -> tuple[int, int]:
    """Sort key of a scene item: top to bottom, then left to right."""
    rect = item.sceneBoundingRect()
    return round(rect.top()), round(rect.left())


def export_view_data(widget: QtWidgets.QWidget, directory, stem: str) -> list[str]:
    """Everything exportable in ``widget``, written into ``directory`` as ``<stem>…``: the view's own
    ``export_png(path)`` / ``export_csv(path)`` when it defines them (``<stem>.png``, ``<stem>.csv``),
    then every plot with curves (``<stem>-<plot>.png/.csv``) and every 2-D heatmap
    (``<stem>-<panel name>.png/.csv``, e.g. ``kernels-conv1``; ``<stem>-heatmap-<k>`` without a name,
    numbered in reading order) in its pyqtgraph scenes. Returns the paths written. A view with
    nothing to export yet raises ValueError from its own exporter; a file that cannot be written, OSError."""
    directory = os.fspath(directory)
    written = []
    for method, ext in (("export_png", "png"), ("export_csv", "csv")):
        if callable(getattr(widget, method, None)):
            path = os.path.join(directory, f"{stem}.{ext}")
            getattr(widget, method)(path)
            written.append(path)
    plots, heatmaps = [], []
    for view in widget.findChildren(pg.GraphicsView):
        for item in view.scene().items():
            if isinstance(item, pg.PlotItem) and plot_curves(item):
                plots.append((item.objectName() or view.objectName(), item))  # a plot's own name first
            elif isinstance(item, pg.ImageItem) and item.image is not None and np.ndim(item.image) == 2 \
                    and item.image.size > 1:
                heatmaps.append(item)
    own_curves = getattr(widget, "curves_in_own_csv", False)  # its CSV has the data the plots thin out
    plots.sort(key=lambda named: _reading_order(named[1]))
    for k, (name, item) in enumerate(plots):
        base = os.path.join(directory, f"{stem}-{_slug(name) if name else f'plot-{k + 1}'}")
        if len(plots) > 1 and name and sum(n == name for n, _ in plots) > 1:
            base += f"-{k + 1}"
        written += export_plot(item, base + ".png", None if own_curves else base + ".csv")
    # In reading order (top to bottom, left to right), named after their panel when it has a name.
    heatmaps.sort(key=_reading_order)
    for k, item in enumerate(heatmaps):
        name = _slug(item.objectName()) if item.objectName() else f"heatmap-{k + 1}"
        base = os.path.join(directory, f"{stem}-{name}")
        written += export_heatmap(item, base + ".png", base + ".csv")
    return written


def export_all_or_nothing(directory, write, replace) -> list[str]:
    """Write a set of files into ``directory`` whole or not at all: ``write(folder) -> [paths]`` writes
    them into a hidden folder inside ``directory``; then, when some of their names exist there,
    ``replace(existing names) -> bool`` decides; then they are renamed into place. A failure (a full disk)
    or a "no" leaves ``directory`` as it was. Returns the paths written ([] after a "no")."""
    directory = os.fspath(directory)
    staging = tempfile.mkdtemp(prefix=".convscope-export-", dir=directory)
    try:
        staged = write(staging)
        names = [os.path.basename(path) for path in staged]
        existing = [name for name in names if os.path.exists(os.path.join(directory, name))]
        if existing and not replace(existing):
            return []
        targets = [os.path.join(directory, name) for name in names]
        for path, target in zip(staged, targets):
            os.replace(path, target)
        return targets
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------- animations

class PoolingFrames:
    """The pooling view's window-by-window backward stepper as frames: frame i is the view's maps
    and the numbers of window i (its plot above its step text), as on screen. The view's current
    window is restored after each frame."""

    def __init__(self, view) -> None:
        self.view = view

    def frame_count(self) -> int:
        return self.view.slider.maximum() + 1 if self.view.sample is not None else 0

    def render_frame(self, index: int) -> QtGui.QImage:
        view = self.view
        before = view.slider.value()
        view.slider.setValue(index)
        # Pending layout requests (e.g. a map just refitted) are posted events: deliver them first, or
        # the grab shows the old geometry.
        QtCore.QCoreApplication.sendPostedEvents()
        try:
            parts = [view.plot.grab().toImage(), view.step_text.grab().toImage()]
        finally:
            view.slider.setValue(before)
        plot, text = parts
        pad = 8  # the step text gets a margin; the plot fills its own width
        image = QtGui.QImage(max(plot.width(), text.width() + 2 * pad), plot.height() + text.height() + 2 * pad,
                             QtGui.QImage.Format.Format_RGB32)
        image.fill(view.palette().color(QtGui.QPalette.ColorRole.Window))
        painter = QtGui.QPainter(image)
        painter.drawImage(0, 0, plot)
        painter.drawImage(pad, plot.height() + pad, text)
        painter.end()
        return image


def frame_source(widget) -> FrameSource:
    """What :func:`export_animation` renders for ``widget``: the widget itself when it has
    ``frame_count()`` and ``render_frame(i)`` (the conv stepper), a new source from its
    ``animation_frames()`` (the kernel timeline: each export its own), :class:`PoolingFrames` for the
    pooling view. TypeError for anything else."""
    if callable(getattr(widget, "render_frame", None)) and callable(getattr(widget, "frame_count", None)):
        return widget
    if callable(getattr(widget, "animation_frames", None)):
        return widget.animation_frames()
    from app.views.pooling import PoolingView

    if isinstance(widget, PoolingView):
        return PoolingFrames(widget)
    raise TypeError(f"{type(widget).__name__} has no animation to export")


def frame_ranges(widget) -> list[tuple[str, range]]:
    """The frame ranges worth offering for ``widget`` (a view or its frame source): all frames, and for
    the conv stepper also the stage of its current step (a live layer's full playlist runs to thousands
    of frames)."""
    n = frame_source(widget).frame_count()
    ranges = [(f"All {n} frames", range(n))]
    if callable(getattr(widget, "stage_first_index", None)) and n:
        current = widget.current_index()
        bounds = [widget.stage_first_index(stage) for stage in STAGES] + [n]
        for stage, start, end in zip(STAGES, bounds, bounds[1:]):
            if start <= current < end and end - start < n:
                ranges.append((f"The current stage, {stage} ({end - start} frames)", range(start, end)))
    return ranges


def gif_available() -> bool:
    """True when Pillow (the optional ``export`` extra) is installed."""
    try:
        importlib.import_module("PIL.Image")
    except ImportError:
        return False
    return True


def _pil_frame(image: QtGui.QImage):
    """A QImage as a palette PIL image (GIF frames are 8-bit; the steppers' flat colours and text
    survive a 255-colour palette)."""
    from PIL import Image

    rgb = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = rgb.width(), rgb.height()
    rows = np.frombuffer(rgb.constBits(), np.uint8, count=rgb.sizeInBytes()).reshape(h, rgb.bytesPerLine())
    pixels = np.ascontiguousarray(rows[:, : 3 * w]).reshape(h, w, 3)  # drop the 4-byte row padding
    return Image.fromarray(pixels, "RGB").quantize(colors=GIF_COLOURS, method=Image.Quantize.FASTOCTREE)


def _sequence_stem(path) -> str:
    """``anim`` for ``anim.png`` (or ``anim``): what a PNG sequence's frame numbers follow."""
    stem = os.fspath(path)
    return stem[:-4] if stem.lower().endswith(".png") else stem


def sequence_paths(path, count: int) -> list[str]:
    """The files of a PNG sequence for ``path`` (``anim.png`` -> ``anim-0001.png`` …)."""
    stem, digits = _sequence_stem(path), max(4, len(str(count)))
    return [f"{stem}-{k + 1:0{digits}d}.png" for k in range(count)]


def later_frames(path, count: int) -> list[str]:
    """The frames after frame ``count`` of an earlier, longer PNG sequence for ``path``: ``anim-0010.png``,
    ``anim-0011.png`` … as long as they follow on without a gap, numbered as the ``count`` frames of the
    new one are (a lone ``anim-2023.png`` is somebody's picture, not a leftover), in order."""
    stem, digits = _sequence_stem(path), max(4, len(str(count)))
    later, k = [], count + 1
    while len(str(k)) <= digits and os.path.isfile(name := f"{stem}-{k:0{digits}d}.png"):
        later.append(name)
        k += 1
    return later


def export_animation(widget, path, frames: Sequence[int] | None = None, fps: float = 2.0,
                     parent: QtWidgets.QWidget | None = None) -> list[str]:
    """Render ``frames`` (default all) of ``widget``'s animation with the numbers it shows now.

    ``path`` ending in ``.gif``: one animated GIF at ``fps`` frames per second, looping (needs Pillow;
    RuntimeError otherwise). Anything else: a PNG sequence (see :func:`sequence_paths`). A progress
    dialog (modal to ``parent``) can cancel; a cancelled export removes what it wrote and returns [].
    Returns the paths written."""
    source = frame_source(widget)
    indices = list(range(source.frame_count()) if frames is None else frames)
    if not indices:
        raise ValueError("there is nothing to export yet: the view shows no steps")
    path = os.fspath(path)
    gif = path.lower().endswith(".gif")
    if gif and not gif_available():
        raise RuntimeError("GIF export needs Pillow (pip install 'convscope[export]'); a PNG sequence works without it")
    targets = [path] if gif else sequence_paths(path, len(indices))
    progress = QtWidgets.QProgressDialog("Rendering frames…", "Cancel", 0, len(indices) + (1 if gif else 0), parent)
    progress.setWindowTitle("Export animation")
    progress.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
    progress.setMinimumDuration(500)
    # A sequence's frames go to hidden temporary files, renamed over the targets only once all are
    # written: a cancel or a full disk leaves earlier files of the same names as they were.
    pending = []
    try:
        if gif:
            first = source.render_frame(indices[0])
            _check_gif_size(len(indices), first)
            with atomic_write(path, suffix=".gif") as f:
                pictures = _gif_frames(source, indices, first, progress)
                next(pictures).save(f, format="GIF", save_all=True, append_images=pictures, loop=0,
                                    duration=int(round(1000.0 / fps)), optimize=False)
        else:
            for k, index in enumerate(indices):
                if progress.wasCanceled():
                    raise _Cancelled
                pending.append(_temporary_png(source.render_frame(index), targets[k]))
                progress.setValue(k + 1)  # also lets the GUI breathe (and Cancel be clicked)
            for temporary, target in zip(pending, targets):
                os.replace(temporary, target)
            pending = []
        progress.setValue(progress.maximum())
        return targets
    except _Cancelled:  # atomic_write left any earlier GIF as it was
        return []
    finally:
        _remove(pending)  # cancelled or failed
        progress.close()
        progress.deleteLater()


GIF_MAX_PIXELS = 300 * 2**20  # frames x width x height: Pillow holds every 8-bit frame until it writes the GIF


class _Cancelled(Exception):
    """Cancel was clicked in an export's progress dialog."""


def _check_gif_size(count: int, frame: QtGui.QImage) -> None:
    """ValueError when ``count`` frames like ``frame`` would make a GIF too large to hold in memory: a live
    layer's whole playlist (4,055 frames) took 2.2 GB and froze the window for 8 s while Pillow wrote it."""
    if count * frame.width() * frame.height() > GIF_MAX_PIXELS:
        most = GIF_MAX_PIXELS // (frame.width() * frame.height())
        raise ValueError(f"{count:,} frames of {frame.width()} x {frame.height()} pixels are too many for one "
                         f"animated GIF (at most {most:,} at this size): export the current stage, or a PNG "
                         "sequence, which has no such limit")


def _gif_frames(source: FrameSource, indices: list[int], first: QtGui.QImage, progress: QtWidgets.QProgressDialog):
    """The GIF's frames as palette PIL images, rendered one at a time as Pillow asks for them (so the
    progress dialog moves, and none but Pillow's own copies stay in memory); raises _Cancelled on Cancel.
    The last step, Pillow compressing the frames it holds, has no progress of its own."""
    for k, index in enumerate(indices):
        if progress.wasCanceled():
            raise _Cancelled
        yield _pil_frame(first if k == 0 else source.render_frame(index))
        progress.setValue(k + 1)
    progress.setLabelText("Writing the GIF…")


def _temporary_png(image: QtGui.QImage, target: str) -> str:
    """``image`` as a PNG in a new hidden file next to ``target`` (OSError naming ``target``)."""
    data = _png_bytes(image)
    try:
        fd, temporary = tempfile.mkstemp(prefix=".convscope-", suffix=".png",
                                         dir=os.path.dirname(os.path.abspath(target)))
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, new_file_mode())
    except OSError as exc:
        os.remove(temporary)
        raise type(exc)(exc.errno, exc.strerror, target) from None
    return temporary


def _remove(paths: list[str]) -> None:
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def completed_save_path(parent: QtWidgets.QWidget | None, path: str, suffix: str, title: str,
                        replaces: str = "") -> str | None:
    """``path`` from a save dialog, with ``suffix`` (e.g. ".npz") added when it does not end in it (any
    case), after removing ``replaces`` (e.g. ".npz" for a session's ".convscope.npz"); None when that
    completed name is an existing file the user chose not to replace. The dialog asked only about the
    name as typed: "vgg7" did not warn of "vgg7.npz", which was then overwritten without a word."""
    if path.lower().endswith(suffix.lower()):
        return path
    if replaces and path.lower().endswith(replaces.lower()):
        path = path[:-len(replaces)]
    path += suffix
    if os.path.exists(path) and QtWidgets.QMessageBox.question(
            parent, title, f"{os.path.basename(path)} already exists in {os.path.dirname(path) or '.'}.\n"
            "Do you want to replace it?") != QtWidgets.QMessageBox.StandardButton.Yes:
        return None
    return path


def export_animation_dialog(widget, parent: QtWidgets.QWidget | None = None, directory: str = "") -> list[str]:
    """File → Export animation: ask which frames (when there is a choice) and where, as GIF (offered
    when Pillow is installed) or PNG sequence, then export with a progress dialog. Problems are shown
    in a message box. Returns the paths written ([] when cancelled or failed)."""
    parent = parent or widget.window()
    try:
        source = frame_source(widget)  # one for the whole export: the frames counted are the frames written
    except TypeError as error:
        QtWidgets.QMessageBox.information(parent, "Export animation", f"{error}: choose the Conv stepper, "
                                          "the Pooling view or the Kernel timeline.")
        return []
    ranges = frame_ranges(source)
    if not ranges[0][1]:
        QtWidgets.QMessageBox.information(parent, "Export animation", "There is nothing to export yet: the "
                                          "view shows no steps.")
        return []
    frames = ranges[0][1]
    if len(ranges) > 1:
        labels = [label for label, _ in ranges]
        choice, ok = QtWidgets.QInputDialog.getItem(parent, "Export animation", "Frames to export:", labels, 0, False)
        if not ok:
            return []
        frames = ranges[labels.index(choice)][1]
    gif_filter = "Animated GIF (*.gif)"
    if gif_available():
        filters = [gif_filter, "PNG sequence (*.png)"]
    else:  # say why there is no GIF choice, rather than leave it missing without a word
        filters = ["PNG sequence — animated GIF needs Pillow: pip install 'convscope[export]' (*.png)"]
    default = os.path.join(directory, f"convscope-{_slug(widget.objectName() or 'animation')}")
    path, chosen = QtWidgets.QFileDialog.getSaveFileName(parent, "Export animation", default, ";;".join(filters))
    if not path:
        return []
    later = []  # frames of an earlier, longer PNG sequence, removed once the new one is written
    if chosen == gif_filter:
        path = completed_save_path(parent, path, ".gif", "Export animation")
        if path is None:
            return []
    else:  # the file dialog asked about "a.png"; the files are a-0001.png …
        path = path if path.lower().endswith(".png") else path + ".png"
        existing = [p for p in sequence_paths(path, len(frames)) if os.path.exists(p)]
        later = later_frames(path, len(frames))
        if (existing or later) and QtWidgets.QMessageBox.question(
                parent, "Export animation", f"{len(existing) + len(later)} file(s) of this sequence already "
                f"exist ({os.path.basename((existing or later)[0])} …). Replace them?"
                + (f" The {len(later)} frame(s) after frame {len(frames)} are removed: they belong to an "
                   "earlier, longer export." if later else "")) != QtWidgets.QMessageBox.StandardButton.Yes:
            return []
    speed = getattr(widget, "speed", None)  # the conv stepper's playback speed, steps per second
    fps = speed.value() if isinstance(speed, QtWidgets.QDoubleSpinBox) else getattr(source, "fps", 2.0)
    try:
        written = export_animation(source, path, frames, fps=fps, parent=parent)
    except OSError as error:
        if chosen == gif_filter:
            text = write_failure(path, error)
        else:
            names = sequence_paths(path, len(frames))
            text = write_failure(names[0] if len(names) == 1 else f"{names[0]} … {os.path.basename(names[-1])}",
                                 error, "Any earlier files of those names are unchanged.")
        QtWidgets.QMessageBox.warning(parent, "Export animation", text)
        return []
    except (RuntimeError, ValueError) as error:  # no Pillow for a GIF, a GIF too large: sentences of their own
        QtWidgets.QMessageBox.warning(parent, "Export animation", str(error))
        return []
    if written:
        _remove(later)  # else the folder would hold one sequence made of two exports
    return written
