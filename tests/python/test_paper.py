# SPDX-License-Identifier: Apache-2.0
"""paper/build.py from the committed results into a temporary folder: one ledger row per claim
of paper/claims.json, --pdf refusing without its tools, and (where pandoc and WeasyPrint are
installed: tools/setup.sh --paper) a PDF."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / "paper" / "build.py"


def build(out, *args, env=None):
    return subprocess.run([sys.executable, str(BUILD), "--out", str(out), *args], capture_output=True, text=True,
                          env=env)


def test_paper_md_has_one_ledger_row_per_claim(tmp_path):
    r = build(tmp_path)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "paper.md").read_text()
    claims = json.loads((ROOT / "paper" / "claims.json").read_text())["claims"]
    for c in claims:
        assert f"| {c['id']} | {c['document']} |" in md, c["id"]
    # A cell holding an unescaped "|" would split its row: every ledger row has 5 columns.
    rows = [line for line in md.splitlines() if line.startswith("| ") and any(f"| {c['id']} |" in line for c in claims)]
    assert len(rows) == len(claims)
    for line in rows:
        assert line.replace("\\|", "").count("|") == 6, line


def test_pdf_flag_refuses_without_the_tools(tmp_path):
    # A PATH holding only the Python interpreter: no pandoc, no weasyprint.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    r = build(tmp_path / "out", "--pdf", env={**os.environ, "PATH": str(bin_dir)})
    assert r.returncode == 1
    assert "tools/setup.sh --paper" in r.stderr
    assert (tmp_path / "out" / "paper.md").exists()  # the Markdown is still written
    assert not (tmp_path / "out" / "paper.pdf").exists()


def test_pdf_is_built_when_the_tools_are_installed(tmp_path):
    if not (shutil.which("pandoc") and shutil.which("weasyprint")):
        pytest.skip("pandoc and weasyprint are not installed (tools/setup.sh --paper installs them)")
    r = build(tmp_path, "--pdf")
    assert r.returncode == 0, r.stderr
    pdf = (tmp_path / "paper.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert b"/Type /Page" in pdf or b"/Type/Page" in pdf
    assert (tmp_path / "paper.html").read_text().count("<table") >= 2
