"""Write each program's ``.expected`` from a run under real TaskFlow (a development aid).

Usage: ``/path/to/taskflow-venv/bin/python _regenerate.py [program ...]``. The tests
never run this: they compare our package's output with the files it wrote, so the
expected output is TaskFlow's own behaviour rather than ours.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ENGINE = re.compile(r"<[^<>\n]*Engine[^<>\n]*>")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def normalise(text: str) -> str:
    """The same normalisation the tests apply (kept in step with conftest.py)."""
    text = _ENGINE.sub("<ENGINE>", text)
    text = _UUID.sub("<UUID>", text)
    return _ADDRESS.sub(" at 0x...", text)


def main(names: list[str]) -> int:
    """Regenerate the named programs' expected output (all programs when none are named)."""
    paths = [HERE / f"{n}.py" for n in names] or sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_")
    )
    for path in paths:
        done = subprocess.run(
            [sys.executable, path.name], cwd=HERE, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"{path.name}: exit {done.returncode}\n{done.stderr}", file=sys.stderr)
            return 1
        path.with_suffix(".expected").write_text(normalise(done.stdout))
        print(f"wrote {path.with_suffix('.expected').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
