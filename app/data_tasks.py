"""Loading data for :class:`app.main_window.MainWindow` (:class:`DataTasks`, a mixin): the datasets the
panel offers, full MNIST read from a folder or downloaded on a background thread (a cancellable
progress dialog for the download), and the refusal of anything that trains or replaces the weights
meanwhile."""
from __future__ import annotations

import functools

from PySide6 import QtCore, QtWidgets

from app.file_menu import message_box
from app.worker import BackgroundTask
from engine import data as engine_data


class DataTasks:
    """The training and validation data, and loading them in the background (mixed into MainWindow)."""

    def _describe_data(self) -> str:
        h, w = self.train_data.x.shape[1:3]
        return f"{len(self.train_data):,} training / {len(self.val_data):,} validation images, {h}x{w}"

    def use_datasets(self, train: engine_data.Dataset, val: engine_data.Dataset, key: str,
                     path: str | None = None) -> None:
        """Train on ``train`` and validate on ``val`` from now on (``key``: a key of app.training_panel.DATASETS)."""
        self.train_data, self.val_data = train, val
        self._dataset_path = path
        self.panel.set_dataset(key, self._describe_data(), train.x.shape[1:])
        for view in self.views.values():
            if hasattr(view, "datasets_changed"):
                view.datasets_changed()

    @QtCore.Slot(str)
    def request_dataset(self, key: str) -> None:
        """Load the dataset the panel asked for (in the background when it is big)."""
        if self._task is not None:
            return
        if key == "bundled":
            self.use_datasets(*engine_data.load_bundled_mnist(), key)
        elif key == "digits8x8":
            self.use_datasets(*engine_data.load_digits_8x8(), key)
        elif key == "mnist_dir":
            directory = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder with the MNIST files",
                                                                   self.settings.last_dir())
            if directory:
                self.settings.set_last_dir(directory)
                self.load_mnist_dir(directory)
        elif key == "download":
            self.download_mnist()

    def load_mnist_dir(self, directory: str) -> None:
        """Load full MNIST from ``directory`` on a background thread."""
        self.statusBar().showMessage(f"Loading MNIST from {directory}…")
        self._start_task(functools.partial(_load_mnist_task, directory))

    def download_mnist(self) -> None:
        """Download full MNIST on a background thread behind a cancellable progress dialog, then load it."""
        total = sum(info["size"] for info in engine_data.MNIST_FILES.values())
        dialog = QtWidgets.QProgressDialog("Downloading MNIST…", "Cancel", 0, total, self)
        dialog.setObjectName("downloadDialog")
        dialog.setWindowTitle("Download MNIST")
        # Not modal: a modal QProgressDialog spins the event loop inside setValue (re-entrancy); the
        # panel is disabled while the task runs instead.
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        self._download_dialog = dialog
        self._download_done = {}
        task = self._start_task(_download_mnist_task)
        task.progressed.connect(self._download_progress)
        dialog.canceled.connect(self._cancel_task)
        dialog.show()

    @QtCore.Slot(object)
    def _download_progress(self, args: tuple) -> None:
        done, _, name = args
        self._download_done[name] = done
        dialog = self._download_dialog
        if dialog is not None:
            dialog.setLabelText(f"Downloading {name}…")
            dialog.setValue(min(sum(self._download_done.values()), dialog.maximum()))

    @QtCore.Slot()
    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel.set()
            # The download notices between two reads: on a stalled connection that is when the
            # server answers or the read times out. Until then the panel stays busy: say why.
            self.statusBar().showMessage("Cancelling the download: it stops at the server's next answer "
                                         "(on a stalled connection, within 30 s)…")

    def _start_task(self, function) -> BackgroundTask:
        """Run ``function(cancel, progress) -> (train, test, path)`` in the background, then use that data."""
        self.panel.set_state("busy")
        task = BackgroundTask(function, self)
        self._task = task
        self._update_actions()
        task.succeeded.connect(self._task_succeeded)
        task.failed.connect(self._task_failed)
        task.finished.connect(self._task_finished)
        task.start()
        return task

    @QtCore.Slot(object)
    def _task_succeeded(self, result: tuple) -> None:
        train, test, path = result
        self.use_datasets(train, test, "mnist_dir", path)
        self.statusBar().showMessage(f"Loaded {self._describe_data()} from {path}.", 5000)

    @QtCore.Slot(object)
    def _task_failed(self, error: Exception) -> None:
        if isinstance(error, engine_data.DownloadCancelled):
            self.statusBar().showMessage("Download cancelled.", 5000)
            return
        self.statusBar().clearMessage()
        message_box(self, QtWidgets.QMessageBox.Icon.Warning, "Cannot load the data",
                    f"{error}\n\nTraining stays on the data loaded before ({self._describe_data()}).")

    @QtCore.Slot()
    def _task_finished(self) -> None:
        if self._download_dialog is not None:
            self._download_dialog.canceled.disconnect(self._cancel_task)  # close() emits canceled too
            self._download_dialog.close()
            self._download_dialog.deleteLater()
            self._download_dialog = None
        self._task.deleteLater()
        self._task = None
        self.panel.set_state(self._run_state)
        self._update_actions()

    def _loading(self) -> bool:
        """True (and a status message) while data loads in the background: nothing that trains or
        replaces the weights may start meanwhile."""
        if self._task is not None:
            self.statusBar().showMessage("Loading data: try again when it has finished (or cancel it).", 5000)
        return self._task is not None


def _load_mnist_task(directory: str, cancel, progress) -> tuple:
    """Background: full MNIST from a folder -> (train, test, directory)."""
    train, test = engine_data.load_mnist_dir(directory)
    return train, test, directory


def _download_mnist_task(cancel, progress) -> tuple:
    """Background: download full MNIST (cancellable), then load it -> (train, test, folder)."""
    folder = engine_data.download_mnist(progress=progress, cancel=cancel)
    train, test = engine_data.load_mnist_dir(folder)
    return train, test, str(folder)
