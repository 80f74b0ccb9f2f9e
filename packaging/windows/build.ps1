# The Windows installer, in one command (Windows 10/11, Python 3.11 on PATH, Inno Setup 6 installed):
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-Version 0.1.0] [-TorchIndex URL]
#
# makes dist\fine-tune-studio-VERSION-setup.exe: the self-contained app folder (packaging\app_folder.py, the same
# script the Linux package uses) with the CUDA build of torch from PyTorch's index (-TorchIndex "" takes PyPI's,
# which on Windows is the CPU build) and llama-cpp-python's prebuilt CPU wheel, wrapped by Inno Setup
# (packaging\windows\fine-tune-studio.iss). -Compression none makes a quick, large installer (CI's upgrade test).
# Written for Windows PowerShell 5.1; it has run only on CI's Windows runner (.github/workflows/windows.yml).
param(
    [string]$Version = "",
    [string]$TorchIndex = "https://download.pytorch.org/whl/cu128",
    [string]$Compression = "lzma2/max",
    [string]$OutDir = "dist",
    [switch]$ReuseAppFolder
)
# Not "Stop": Windows PowerShell 5.1 turns a native command's stderr line into a terminating error; every
# step's exit code is checked instead (as in run.ps1).
$ErrorActionPreference = "Continue"
Set-Location -LiteralPath (Split-Path -Parent (Split-Path -Parent $PSScriptRoot))
$llamaIndex = "https://abetlen.github.io/llama-cpp-python/whl/cpu"

function Invoke-Step([string]$what, [scriptblock]$step) {
    Write-Host "== $what" -ForegroundColor Cyan
    & $step
    if ($LASTEXITCODE -ne 0) { Write-Host "Build stopped at: $what (exit code $LASTEXITCODE)" -ForegroundColor Red; exit 1 }
}

if (-not $Version) {
    $Version = (& python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])").Trim()
}
$app = "build\win\app"
if (-not ($ReuseAppFolder -and (Test-Path $app))) {
    if (Test-Path "build\win") { Remove-Item -Recurse -Force "build\win" }
    # The building environment: what app_folder.py itself needs (setuptools for the wheel, platformdirs for
    # studio.paths, and llama-cpp-python's version, whose source release holds the matching converter).
    Invoke-Step "make the build environment" { & python -m venv build\win\venv }
    $py = "build\win\venv\Scripts\python.exe"
    Invoke-Step "install the build tools" { & $py -m pip install -q --disable-pip-version-check "setuptools>=68" platformdirs }
    Invoke-Step "install llama-cpp-python's version (for the converter)" {
        & $py -m pip install -q --no-deps --only-binary ":all:" "llama-cpp-python==0.3.36" --extra-index-url $llamaIndex
    }
    $torchArgs = if ($TorchIndex) { @("--torch-index", $TorchIndex) } else { @() }
    # the converter is fetched into a cache of the build's own, not the building user's
    $env:FTSTUDIO_HOME = (Join-Path (Get-Location).Path "build\win\ftstudio-cache")
    Invoke-Step "make the app folder" { & $py packaging\app_folder.py $app @torchArgs --extra-index $llamaIndex }
}
Copy-Item resources\icons\app.ico "$app\app.ico" -Force

$iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"
if (-not (Test-Path $iscc)) { Write-Host "Inno Setup 6 is not installed: choco install innosetup" -ForegroundColor Red; exit 1 }
Invoke-Step "compile the installer" {
    & $iscc /Q "/DAppVersion=$Version" "/DAppFolder=$((Resolve-Path $app).Path)" "/DCompression=$Compression" `
        "/O$((Get-Location).Path)\$OutDir" packaging\windows\fine-tune-studio.iss
}
$setup = Get-Item "$OutDir\fine-tune-studio-$Version-setup.exe"
Write-Host ("Built {0}: {1:N0} MB" -f $setup.FullName, ($setup.Length / 1MB))
