"""The desktop packages run their Python in safe-path mode (the Linux launcher's PYTHONSAFEPATH, the ._pth file
on Windows), where Python does not put a script's own folder on the path; llama.cpp's converter, which
imports its `conversion` package from its folder, must run there all the same."""
import pytest

from studio.export.converter import converter_dir, run_converter


def test_the_converter_runs_when_python_adds_no_script_folder(monkeypatch):
    if not (converter_dir() / "convert_hf_to_gguf.py").is_file():
        pytest.skip("the converter is not installed (ftstudio setup)")
    monkeypatch.setenv("PYTHONSAFEPATH", "1")
    run_converter(["--help"], "help", "convert_hf_to_gguf.py", None, None)  # raises ExportError when it fails
