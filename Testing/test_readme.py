"""The README's Python example runs as written, and its commands exist."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_python_example_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    segmentation, table = namespace["segmentation"], namespace["table"]
    assert segmentation.GetSegmentation().GetNumberOfSegments() >= 6
    assert table.GetNumberOfRows() == segmentation.GetSegmentation().GetNumberOfSegments()


def test_commands_in_the_readme_exist():
    from surgicalai.cli import SUBCOMMANDS

    text = README.read_text()
    named = set(re.findall(r"`surgicalai ([a-z-]+)", text))
    assert named and named <= {name for name, _ in SUBCOMMANDS}, named
    for script in re.findall(r"bash (scripts/\S+\.sh)", text):
        assert (README.parent / script).is_file(), script
