"""The README's Python snippet runs as written (on the tiny config, so the suite stays fast)."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_models_snippet_runs(monkeypatch):
  readme = (ROOT / "README.md").read_text()
  code = re.search(r"## Models\n\n```python\n(.*?)```", readme, re.S).group(1)
  assert "configs/uniformerv2/k400_b16_8x224.py" in code
  code = code.replace("configs/uniformerv2/k400_b16_8x224.py", "configs/uniformerv2/tiny_test.py")
  monkeypatch.chdir(ROOT)
  env = {}
  exec(compile(code, "README.md", "exec"), env)
  assert env["logits"].shape == (1, 10)
  assert env["clip"].shape == (1, 4, 32, 32, 3)
  assert os.path.isfile(ROOT / "configs" / "uniformerv2" / "k400_b16_8x224.py")
