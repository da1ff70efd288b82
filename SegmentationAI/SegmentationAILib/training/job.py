"""A training run on a background thread with progress polled from the GUI thread (the Train section's engine)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

from SegmentationAILib.cases import Case
from SurgicalAICore.errors import OperationCancelled
from SegmentationAILib.label_mapping import LabelMapping
from SurgicalAICore.progress import CancelToken
from SegmentationAILib.training.settings import TrainingResult, TrainingSettings
from SegmentationAILib.training.loop import CURVES, train


class TrainingJob:
    """A training run on a background thread, for a GUI: cases are read from the scene on the caller's
    (main) thread beforehand; the GUI polls :meth:`poll` from a timer for progress, epoch records and
    the end, and :meth:`stop` cancels (the last finished epoch stays resumable)."""

    def __init__(self, cases: Sequence[Case], mapping: LabelMapping, output: Union[str, Path],
                 settings: TrainingSettings, val_cases: Optional[Sequence[Case]] = None,
                 init_model: Union[str, Path, None] = None, resume: bool = False):
        import queue
        import threading

        self._queue: "queue.Queue[dict]" = queue.Queue()
        self._cancel = CancelToken()
        self.result: Optional[TrainingResult] = None
        self.error: Optional[str] = None
        self.curves_path = Path(str(output) + ".training") / CURVES
        kwargs = dict(settings=settings, val_cases=val_cases, init_model=init_model, resume=resume)

        def work() -> None:
            try:
                self.result = train(cases, mapping, output, progress=self._on_progress, cancel=self._cancel,
                                    on_epoch=lambda r: self._queue.put({"kind": "epoch", **r}), **kwargs)
                self._queue.put({"kind": "done", "model_path": str(self.result.model_path),
                                 "best_val_dice": self.result.best_val_dice})
            except Exception as error:  # reported to the GUI as one line; the thread must not die silently
                self.error = str(error).splitlines()[0] if str(error) else type(error).__name__
                self._queue.put({"kind": "error", "message": self.error,
                                 "cancelled": isinstance(error, OperationCancelled)})

        self._thread = threading.Thread(target=work, name="SurgicalAI-training", daemon=True)

    def _on_progress(self, fraction: float, message: str) -> None:
        self._queue.put({"kind": "progress", "fraction": fraction, "message": message})

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._cancel.cancel()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def poll(self) -> List[dict]:
        """Events since the last call: progress, epoch records, then done or error."""
        import queue

        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events
