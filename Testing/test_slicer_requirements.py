"""The in-Slicer requirements install on the Pythons of the supported Slicer releases: pip resolves each
range to a binary wheel for each supported Python and platform (needs PyPI; skipped with the reason when
pip cannot reach an index). Also: the first-run install flow, headless."""
import json
import subprocess
import sys

import pytest

from SurgicalAICore.dependencies import (SUPPORTED_SLICER_PYTHONS, ensure_dependencies, requirements_path,
                                         slicer_requirements)

# the platforms Slicer's installers ship for (Linux builds are manylinux_2_28-compatible)
PLATFORMS = {"linux": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"], "windows": ["win_amd64"],
             "macos": ["macosx_13_0_arm64", "macosx_11_0_arm64"]}


@pytest.mark.parametrize("python", sorted(set(SUPPORTED_SLICER_PYTHONS.values())))
@pytest.mark.parametrize("system", sorted(PLATFORMS))
def test_requirements_resolve_to_wheels_for_the_supported_pythons(python, system, tmp_path):
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
               "--only-binary=:all:", "--python-version", python, "--target", str(tmp_path / "t"),
               "--report", str(tmp_path / "report.json"), "--timeout", "15", "--retries", "1",
               "-r", str(requirements_path())]
    for platform in PLATFORMS[system]:
        command += ["--platform", platform]
    run = subprocess.run(command, check=False, capture_output=True, text=True, encoding="utf-8", errors="replace",
                         timeout=300)
    if run.returncode != 0 and any(s in run.stderr for s in ("NewConnectionError", "Network is unreachable",
                                                              "Temporary failure in name resolution",
                                                              "ConnectTimeout", "ProxyError")):
        pytest.skip(f"pip cannot reach a package index: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    installed = {item["metadata"]["name"].lower() for item in report["install"]}
    from packaging.requirements import Requirement

    assert {Requirement(r).name.lower() for r in slicer_requirements()} <= installed


def test_requirements_are_ranges_not_pins():
    from packaging.requirements import Requirement

    for line in slicer_requirements():
        assert not any(s.operator in ("==", "===") for s in Requirement(line).specifier), line


def test_first_run_installs_what_is_missing_and_a_failed_install_raises():
    state = {"missing": ["torch", "scipy>=1.12"]}
    installed = []

    def pip_install(specs):
        installed.extend(specs)
        state["missing"] = []

    def torch():
        installed.append("torch (PyTorch extension)")
        return True

    assert not ensure_dependencies(lambda _text: False, pip_install, torch, lambda: state["missing"])
    assert installed == []  # declined: nothing installed
    assert ensure_dependencies(lambda _text: True, pip_install, torch, lambda: state["missing"])
    assert installed == ["torch (PyTorch extension)", "scipy>=1.12"]

    def failing(_specs):
        raise RuntimeError("pip: no matching distribution")

    state["missing"] = ["scipy>=1.12"]
    with pytest.raises(RuntimeError, match="no matching"):  # the face catches it and shows one line
        ensure_dependencies(lambda _text: True, failing, torch, lambda: state["missing"])


def test_dependency_gate_builds_after_install_or_says_restart():
    from SurgicalAICore.panel.first_run import DependencyGate

    state = {"missing": ["scipy>=1.12"]}

    def pip_install(_specs):
        state["missing"] = []

    gate = DependencyGate(lambda: state["missing"], modules=("json",))
    assert not gate.check() and "scipy>=1.12" in gate.message
    assert not gate.install(lambda _text: False, pip_install) and not gate.ready  # declined
    assert gate.install(lambda _text: True, pip_install) and gate.ready and gate.message == ""

    state["missing"] = ["scipy>=1.12"]
    broken = DependencyGate(lambda: state["missing"], modules=("surgicalai_no_such_module",))
    assert not broken.install(lambda _text: True, pip_install)
    assert broken.restart_needed and "restart 3D Slicer" in broken.message

    state["missing"] = ["scipy>=1.12"]
    failing = DependencyGate(lambda: state["missing"])

    def pip_fails(_specs):
        raise RuntimeError("pip: no matching distribution for scipy>=1.12\nmore lines")

    assert not failing.install(lambda _text: True, pip_fails)
    assert failing.message == ("Installing Python packages failed: "
                               "RuntimeError: pip: no matching distribution for scipy>=1.12")
