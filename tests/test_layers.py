"""The house rules a newcomer relies on: the import-layer contract (pyproject's ``[tool.importlinter]``), file
sizes, and code that cites only what is in this repository."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_layer_contract_and_no_cycles():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


def test_no_package_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "blendrl").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_code_cites_only_the_repository_docs_and_no_dated_measurements():
    bad = re.compile(r"ALGORITHMS\.md|20[0-9]{2}-[01][0-9]-[0-3][0-9]")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "blendrl").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert not hits, hits


def test_every_section_a_docstring_cites_is_in_docs_algorithms():
    text = (ROOT / "docs" / "algorithms.md").read_text()
    headings = set(re.findall(r"^#+ §(\d+)", text, re.M))
    cited = {(str(p.relative_to(ROOT)), n) for p in (ROOT / "blendrl").rglob("*.py")
             for n in re.findall(r"docs/algorithms\.md §(\d+)", p.read_text())}
    assert cited, "no docstring cites docs/algorithms.md"
    missing = sorted((f, n) for f, n in cited if n not in headings)
    assert not missing, missing
