"""The job runner and the parameter store the panels share: the work runs off the caller's thread, its result
is applied on the caller's thread by poll(), cancel and errors become one-line messages, an abandoned worker
cannot touch a later job; typed values and enum choices round-trip through a real parameter node."""
import threading
import time

import pytest

from SurgicalAICore.errors import InputError
from SurgicalAICore.panel.choices import Device
from SurgicalAICore.panel.jobs import CANCELLED_MESSAGE, JobRunner
from SurgicalAICore.panel.parameters import Param, ParameterStore
from SurgicalAICore.progress import Progress


def test_work_off_thread_result_applied_by_poll_on_the_callers_thread():
    runner, seen = JobRunner(), {}
    assert runner.status()["state"] == "idle"

    def work(progress, cancel):
        seen["work"] = threading.get_ident()
        progress(0.5, "half")
        return 21

    def apply(value):
        seen["apply"] = threading.get_ident()
        return 2 * value

    runner.start(work, apply, name="double")
    assert runner.running and runner.status()["state"] == "running"
    assert runner.wait(10) and not runner.running
    assert runner.result == 42 and runner.error is None and runner.status()["state"] == "done"
    assert seen["work"] != threading.get_ident() == seen["apply"]


def test_cancel_and_errors_are_one_line_messages():
    runner = JobRunner()
    started = threading.Event()

    def slow(progress, cancel):
        started.set()
        for i in range(1000):
            Progress(progress, cancel).step(i / 1000, "working")
            time.sleep(0.005)

    runner.start(slow, lambda _: pytest.fail("a cancelled job applies nothing"))
    started.wait(5)
    runner.cancel()
    assert runner.wait(10) and runner.error == CANCELLED_MESSAGE and runner.status()["state"] == "cancelled"

    runner.start(lambda p, c: (_ for _ in ()).throw(InputError("Volume 'x' is empty.")))
    assert runner.wait(10) and runner.error == "Volume 'x' is empty." and runner.status()["state"] == "failed"
    runner.start(lambda p, c: 1, lambda _: {}["missing"])  # the apply step failing is a message too
    assert runner.wait(10) and runner.error == "KeyError: 'missing'"
    with pytest.raises(Exception, match="still running"):
        runner.start(slow)
        runner.start(slow)
    runner.shutdown()


def test_an_abandoned_worker_cannot_finish_a_later_job():
    runner, release = JobRunner(), threading.Event()
    runner.start(lambda p, c: release.wait(10) and "old")
    runner.shutdown(timeout=0.05)  # the worker is stuck: given up on
    runner.start(lambda p, c: time.sleep(0.2) or "new")
    release.set()
    assert runner.wait(10) and runner.result == "new"


def test_parameter_store_types_choices_and_one_node(scene):
    params = (Param("count", int, 3), Param("rate", float, 0.5), Param("flag", bool, True),
              Param("device", Device, Device.AUTO), Param("path", str, ""),
              Param("volume", "node", node_class="vtkMRMLScalarVolumeNode"))
    store = ParameterStore(scene, "Demo", "Section", params)
    assert store.values() == {"count": 3, "rate": 0.5, "flag": True, "device": Device.AUTO, "path": "",
                              "volume": None}
    changes = []
    store.observe(lambda: changes.append(1))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    store.update(count=7, rate=0.25, flag=False, device="cuda", path="/tmp/x", volume=volume)
    assert len(changes) == 1  # one Modified event for the whole update
    again = ParameterStore(scene, "Demo", "Section", params)  # a second view finds the same node
    assert again.values() == {"count": 7, "rate": 0.25, "flag": False, "device": Device.CUDA, "path": "/tmp/x",
                              "volume": volume}
    assert again.node.GetParameter("device") == "CUDA" and again.node.GetParameter("flag") == "False"
    with pytest.raises(InputError, match="not a ScalarVolumeNode"):
        store.set("volume", scene.AddNewNodeByClass("vtkMRMLModelNode"))
    scene.Clear(0)  # scene closed: the next read makes a fresh node with the defaults
    assert store.get("count") == 3 and store.node.GetScene() is scene
