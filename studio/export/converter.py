"""llama.cpp's reference HF -> GGUF converter, taken from the same llama-cpp-python source release that built
the runtime, so the converter's tokenizer tables and the runtime always agree.

`install_converter` runs at setup time (`ftstudio setup`): it asks pip for that release's source archive and
keeps convert_hf_to_gguf.py, its conversion/ package and its own gguf-py in the app's tools folder. Export
then runs it as a subprocess, with its own gguf-py first on the path, so it never mixes with another gguf.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from studio import paths
from studio.errors import ExportError, StudioError
from studio.fileio import staged_dir
from studio.tether import tethered_popen

Progress = Callable[[str, float], None]
KEEP = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")


def runtime_version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def converter_dir() -> Path:
    """The converter a desktop package ships beside its Python, else the one `ftstudio setup` fetched."""
    name = f"llama.cpp-converter-{runtime_version()}"
    shipped = paths.bundled_tools_dir() / name
    return shipped if shipped.is_dir() else paths.tools_dir() / name


def tool_python() -> str:
    """The Python that runs the converter: this one, or FTSTUDIO_PYTHON where a packaged app bundles its
    interpreter apart from its executable."""
    return os.environ.get("FTSTUDIO_PYTHON") or sys.executable


def converter_script(name: str = "convert_hf_to_gguf.py") -> Path:
    script = converter_dir() / name
    if not script.is_file():
        raise ExportError("The GGUF converter is not installed. Run `ftstudio setup` once (it needs the "
                          "package registry, like installing the app did).")
    return script


def install_converter(progress: Progress | None = None) -> Path:
    """Fetch the llama-cpp-python source release matching the runtime and keep the converter from it."""
    target = converter_dir()
    if all((target / name).is_file() for name in SCRIPTS):  # an older setup without the LoRA script redoes it
        return target
    version = runtime_version()
    if progress:
        progress(f"Fetching llama.cpp's converter for llama-cpp-python {version}", 0.1)
    with tempfile.TemporaryDirectory() as download:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={version}", "-d", download, "-q"], capture_output=True, text=True)
        archives = list(Path(download).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise StudioError(f"Could not fetch the llama-cpp-python {version} source release for its GGUF "
                              f"converter: {result.stderr.strip()[-400:]}")
        with staged_dir(target) as tmp, tarfile.open(archives[0]) as tar:
            prefix = re.compile(r"^[^/]+/vendor/llama\.cpp/")
            for member in tar.getmembers():
                inner = prefix.sub("", member.name, count=1)
                if inner == member.name or not inner.startswith(KEEP) or not (member.isfile() or member.isdir()):
                    continue
                member.name = inner
                tar.extract(member, tmp, filter="data")
    if progress:
        progress("Converter ready", 1.0)
    return target


# The converter's own failure messages, translated into what a user can act on.
KNOWN_FAILURES = [
    (r"BPE pre-tokenizer was not recognized", "This model's tokenizer is not one llama.cpp recognises, so its "
     "GGUF would split text differently from the original. Export is refused; choose a supported base model."),
    (r"Can not map tensor '([^']+)'", "The model has a tensor llama.cpp does not know ({0}); this architecture "
     "or modification is not supported by GGUF export."),
    (r"Model (\w+) is not supported", "llama.cpp cannot run the {0} architecture yet, so it cannot be "
     "exported to GGUF. Choose a supported base model (Llama, Qwen, Mistral, Gemma, Phi-3...)."),
    (r"No space left on device|requested and \d+ written", "The disk filled up during export. Free some space "
     "and export again."),
    (r"Unexpected name '([^']+)': Not a lora_A or lora_B", "The adapter holds a tensor ({0}) that a llama.cpp "
     "LoRA adapter cannot carry (DoRA magnitudes or trained embeddings); export the merged model instead."),
]


def explain_failure(output: str) -> str:
    for pattern, message in KNOWN_FAILURES:
        match = re.search(pattern, output)
        if match:
            return message.format(*match.groups())
    last = [line for line in output.strip().splitlines() if line.strip()][-3:]
    return "GGUF conversion failed: " + " | ".join(last)


def convert_to_gguf(model_dir: Path, out_file: Path, outtype: str = "f16", progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None, label: str | None = None) -> None:
    """Run the reference converter on a model folder, writing `out_file` (the caller stages the name; `label`
    is the final name shown in progress messages)."""
    run_converter([str(Path(model_dir).resolve()), "--outfile", str(Path(out_file).resolve()), "--outtype", outtype],
                  label or out_file.name, "convert_hf_to_gguf.py", progress, cancelled)


def convert_lora_to_gguf(adapter_dir: Path, base_dir: Path, out_file: Path, outtype: str = "f16",
                         progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> None:
    """A PEFT LoRA adapter as a llama.cpp LoRA GGUF, for users who run it on top of their own base GGUF."""
    run_converter([str(Path(adapter_dir).resolve()), "--base", str(Path(base_dir).resolve()), "--outfile",
                   str(Path(out_file).resolve()), "--outtype", outtype], out_file.name, "convert_lora_to_gguf.py",
                  progress, cancelled)


# The script imports its `conversion` package from its own folder. Python puts a script's folder on the path
# only in its default mode: not under PYTHONSAFEPATH or -P, nor with the ._pth file that isolates the Windows
# package's Python. So the folder goes on the path here, whatever the mode.
RUN_SCRIPT = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[2:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_converter(arguments: list[str], label: str, script_name: str, progress: Progress | None,
                  cancelled: Callable[[], bool] | None) -> None:
    """One converter script in a child process (absolute paths, its own folder as the working directory, so
    its gguf-py comes first), reporting its "Writing: N%" lines and stopping at once on cancel. The child
    ends with this process (studio.tether) and never waits for input."""
    from studio.errors import Cancelled

    script = converter_script(script_name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # never the network at export time
    command = [tool_python(), "-c", RUN_SCRIPT, str(script.parent), str(script), *arguments]
    proc = tethered_popen(command, python=tool_python(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=str(script.parent), env=env)
    output = []
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, ""):
        output.append(line)
        percent = re.search(r"Writing:\s+(\d+)%", line)
        if percent and progress:
            progress(f"Writing {label}", int(percent.group(1)) / 100)
        if cancelled and cancelled():
            proc.kill()
            proc.wait()
            raise Cancelled("Export cancelled.")
    if proc.wait() != 0:
        raise ExportError(explain_failure("".join(output)))
