"""The README's library example runs as written on the (small) example study."""

from __future__ import annotations

import re
from pathlib import Path

from example_datasets.generate import generate

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart_of_exactly_two_commands():
    text = README.read_text()
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", text, flags=re.S)
    assert block, "README needs a Quickstart bash block"
    commands = [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def test_library_example_runs(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert blocks, "README needs a python example"
    code = blocks[0]
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 12
    data = generate(tmp_path / "study", seed=0, size="small")
    monkeypatch.chdir(data)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "depth_mm" in out or "shell" in out
    assert "suv_max" in out
