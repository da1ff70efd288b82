"""The "Train" section of the SegmentationAI panel: a binding of ``SegmentationAILib.train_panel.TrainPanel``.

Training runs on the TrainPanel's thread; a QTimer polls it, so the GUI never freezes. Stop cancels
(the last finished epoch stays resumable); the timer and thread end with the panel or the scene.
"""
import os

import qt
import slicer

POLL_MS = 250


class TrainSection:
    """Collapsible Train section inserted into ``parentLayout`` at ``index``."""

    def __init__(self, parentLayout, index, otherJobRunning=lambda: False):
        from SegmentationAILib.train_panel import TrainPanel
        from SurgicalAICore.panel.widget_binding import WidgetBinding

        self.otherJobRunning = otherJobRunning
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "Resources", "UI", "SegmentationAITrain.ui")
        self.widget = slicer.util.loadUI(path)
        self.ui = slicer.util.childWidgetVariables(self.widget)
        self.widget.setMRMLScene(slicer.mrmlScene)
        parentLayout.insertWidget(index, self.widget)
        self.panel = TrainPanel(slicer.mrmlScene)
        self.binding = WidgetBinding(self.panel.params, on_change=self.updateView)
        for name, widget in (("modality", self.ui.modalityComboBox), ("patchSize", self.ui.patchSpinBox),
                             ("epochs", self.ui.epochsSpinBox), ("stepsPerEpoch", self.ui.stepsSpinBox),
                             ("learningRate", self.ui.learningRateSpinBox),
                             ("validationFraction", self.ui.validationSpinBox),
                             ("device", self.ui.trainDeviceComboBox), ("outputFolder", self.ui.outputPathEdit),
                             ("finetuneFolder", self.ui.finetunePathEdit), ("resume", self.ui.resumeCheckBox),
                             ("mapping", self.ui.mappingEdit)):
            self.binding.bind(name, widget)
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.onPoll)
        self.ui.addCaseButton.clicked.connect(self.onAddCase)
        self.ui.removeCaseButton.clicked.connect(self.onRemoveCase)
        self.ui.startTrainingButton.clicked.connect(self.onStartStop)
        self.binding.observe()

    @property
    def running(self):
        return self.panel.running

    # ---- life ----
    def reconnect(self):
        self.binding.observe()

    def shutdown(self):
        self.timer.stop()
        self.panel.shutdown()

    def cleanup(self):
        self.timer.stop()
        self.panel.shutdown()
        self.binding.release()

    # ---- view ----
    def updateView(self):
        self.ui.caseList.clear()
        for label in self.panel.case_labels():
            self.ui.caseList.addItem(label)
        running = self.panel.running
        self.ui.startTrainingButton.text = "Stop training" if running else "Start training"
        self.ui.startTrainingButton.enabled = running or not self.otherJobRunning()
        for widget in (self.ui.addCaseButton, self.ui.removeCaseButton, self.ui.outputPathEdit,
                       self.ui.finetunePathEdit, self.ui.resumeCheckBox):
            widget.enabled = not running
        self.ui.trainProgressBar.value = round(100 * self.panel.fraction)
        self.ui.trainStatusLabel.text = self.panel.message or "Idle."

    def showCurves(self):
        path = self.panel.curves_path
        if path is not None:
            pixmap = qt.QPixmap(str(path))
            width = max(self.ui.curvesLabel.width, 300)
            self.ui.curvesLabel.setPixmap(pixmap.scaledToWidth(width, qt.Qt.SmoothTransformation))

    # ---- actions ----
    def onAddCase(self):
        self._act(lambda: self.panel.add_case(self.ui.caseVolumeSelector.currentNode(),
                                              self.ui.caseSegmentationSelector.currentNode(),
                                              self.ui.caseSecondVolumeSelector.currentNode()))

    def onRemoveCase(self):
        self._act(lambda: self.panel.remove_case(self.ui.caseList.currentRow))

    def onStartStop(self):
        if self.panel.running:
            self.panel.stop()
            self.updateView()
            return
        if self._act(self.panel.start):
            self.timer.start()

    def _act(self, action):
        from SurgicalAICore.panel.jobs import error_message

        try:
            action()
            return True
        except Exception as error:  # one line in the status, never a half-set button
            self.panel.message = error_message(error)
            return False
        finally:
            self.updateView()

    def onPoll(self):
        events = self.panel.poll()
        if any(e["kind"] == "epoch" for e in events):
            self.showCurves()
        if not self.panel.running:
            self.panel.poll()  # the thread has ended: its last events (done / error) are queued by now
            self.timer.stop()
            self.showCurves()
        self.updateView()
