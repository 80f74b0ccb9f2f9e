# The Windows installer as a user gets it (the counterpart of packaging/smoke_test_deb.sh), in one command:
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\smoke_test.ps1 -Setup dist\fine-tune-studio-0.1.0-setup.exe `
#       -Upgrade dist\fine-tune-studio-0.1.0.1-setup.exe
#
# Installs silently for the current user, opens the window offscreen, runs `ftstudio demo --steps 2` (train,
# merge, export with the bundled llama.cpp converter, chat), upgrades with the second installer and checks
# that the user's projects and runs are untouched and still open, uninstalls and checks that the app is gone
# and the user's files are not. Meant for a fresh machine (CI's runner): the user's folders start empty.
# The app's Python ignores the environment's Python settings (its ._pth file), so no clean environment is needed.
param([Parameter(Mandatory = $true)][string]$Setup, [Parameter(Mandatory = $true)][string]$Upgrade)
$ErrorActionPreference = "Continue"
$work = Join-Path ([IO.Path]::GetTempPath()) ("ftstudio-smoke-" + [Guid]::NewGuid().ToString("N").Substring(0, 8))
$userDir = Join-Path $work "user"        # where the user runs the demo from
$app = Join-Path $work "Fine-Tune Studio" # the install folder
New-Item -ItemType Directory -Force -Path $userDir | Out-Null
$env:QT_QPA_PLATFORM = "offscreen"
$uninstallKey = "HKCU:\Software\Microsoft\Windows\CurrentVersion\Uninstall\{6B0F3C2E-7F1D-4C61-9B8A-3E5D2A9C4F17}_is1"
$projects = Join-Path ([Environment]::GetFolderPath("MyDocuments")) "Fine-Tune Studio"
$cache = Join-Path $env:LOCALAPPDATA "fine-tune-studio\fine-tune-studio\Cache"
$results = New-Object System.Collections.Generic.List[string]

function Fail([string]$message) { Write-Host "SMOKE TEST FAILED: $message" -ForegroundColor Red; exit 1 }
function Record([string]$line) { $results.Add($line); Write-Host "[$(Get-Date -Format HH:mm:ss)] $line" }

function Install([string]$installer) {
    $p = Start-Process -FilePath $installer -Wait -PassThru -ArgumentList @(
        "/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/DIR=`"$app`"", "/LOG=`"$work\install.log`"")
    if ($p.ExitCode -ne 0) { Get-Content "$work\install.log" -Tail 30; Fail "the installer $installer exited with $($p.ExitCode)" }
}

function First-Window {  # seconds from the start to the window on screen, and the project it opened
    $info = New-Object System.Diagnostics.ProcessStartInfo (Join-Path $app "python\python.exe"), "-m studio.cli gui --smoke"
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.WorkingDirectory = $userDir
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $process = [Diagnostics.Process]::Start($info)
    $shown = $null; $project = $null; $icons = $null
    while ($null -ne ($line = $process.StandardOutput.ReadLine())) {
        Write-Host "    $line"
        if ($line -like "Window shown:*") { $shown = $clock.Elapsed.TotalSeconds }
        if ($line -like "Project: *") { $project = $line.Substring(9) }
        if ($line -like "Icons: *") { $icons = $line.Substring(7) }
    }
    $process.WaitForExit()
    if ($null -eq $shown -or $process.ExitCode -ne 0) { Fail "the window did not open (exit code $($process.ExitCode))" }
    if ($icons -ne "loaded") { Fail "the window's icons did not load" }
    return @{ Seconds = [math]::Round($shown, 2); Project = $project }
}

function User-Files-Hash {  # the user's projects, runs and exports (caches left out: the app may rebuild them)
    $files = @(Get-ChildItem -Recurse -File $userDir, $projects -ErrorAction SilentlyContinue | Sort-Object FullName)
    $lines = $files | ForEach-Object { "$($_.FullName) $((Get-FileHash $_.FullName -Algorithm SHA256).Hash)" }
    return @{ Count = $files.Count; Hash = ($lines -join "`n").GetHashCode() }
}

# 1. Install
Install $Setup
foreach ($file in "python\python.exe", "python\pythonw.exe", "ftstudio.cmd", "app.ico", "unins000.exe") {
    if (-not (Test-Path (Join-Path $app $file))) { Fail "$file is missing from the install" }
}
$shortcut = Join-Path ([Environment]::GetFolderPath("Programs")) "Fine-Tune Studio.lnk"
if (-not (Test-Path $shortcut)) { Fail "the Start-menu shortcut is missing" }
$installedMb = [math]::Round(((Get-ChildItem -Recurse -File $app | Measure-Object Length -Sum).Sum / 1MB))
Record ("installer: {0} MB; installed size {1} MB" -f [math]::Round((Get-Item $Setup).Length / 1MB), $installedMb)
$mark = Get-Date

# 2. The window: the first start (the starter project is made) and a second one
$first = First-Window; Record "first window, first start: $($first.Seconds) s"
$second = First-Window; Record "first window, second start: $($second.Seconds) s"
if (-not $second.Project.StartsWith($projects)) { Fail "the starter project is at $($second.Project), not in $projects" }

# 3. The demo, from the installed app
$clock = [Diagnostics.Stopwatch]::StartNew()
Push-Location $userDir
& (Join-Path $app "ftstudio.cmd") demo --steps 2 *> "$work\demo.log"
$demoExit = $LASTEXITCODE
Pop-Location
Get-Content "$work\demo.log" -Tail 25
if ($demoExit -ne 0) { Fail "ftstudio demo exited with $demoExit" }
if (-not (Select-String -Path "$work\demo.log" -Pattern "fine-tuned Q4_K_M:" -Quiet)) { Fail "the demo did not chat with its GGUF" }
if (Test-Path (Join-Path $cache "tools")) { Fail "the demo fetched a converter: the bundled one was not used" }
$gguf = Get-ChildItem -Recurse -File $userDir -Filter "*Q4_K_M*.gguf" | Select-Object -First 1
if (-not $gguf) { Fail "no Q4_K_M GGUF was exported" }
Record "ftstudio demo --steps 2: $([math]::Round($clock.Elapsed.TotalSeconds)) s; exported $($gguf.Name) (bundled converter used)"
$written = @(Get-ChildItem -Recurse -Force $app | Where-Object { $_.LastWriteTime -gt $mark -and $_.Name -ne "unins000.dat" })
if ($written.Count -gt 0) { Fail "the app wrote into its install folder: $($written[0].FullName)" }

# 4. Upgrade: the user's files stay and the last project opens again
$before = User-Files-Hash
Install $Upgrade
$version = (Get-ItemProperty $uninstallKey).DisplayVersion
Record "upgraded to $version"
$after = User-Files-Hash
if ($after.Hash -ne $before.Hash) { Fail "the upgrade changed the user's files" }
$third = First-Window
if ($third.Project -ne $second.Project) { Fail "after the upgrade the app opened $($third.Project), not $($second.Project)" }
$answer = & (Join-Path $app "ftstudio.cmd") chat $gguf.FullName --prompt "What colour is milk?" --max-tokens 30
if ($LASTEXITCODE -ne 0) { Fail "the upgraded app could not chat with the earlier run's GGUF" }
Record "after the upgrade: the last project reopened, first window $($third.Seconds) s; the earlier GGUF answers: $answer"

# 5. Uninstall: the app goes, the user's files stay
$before = User-Files-Hash
Start-Process -FilePath (Join-Path $app "unins000.exe") -Wait -ArgumentList "/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART"
$deadline = (Get-Date).AddMinutes(3)  # the uninstaller hands over to a copy of itself and returns at once
while ((Test-Path $app) -and (Get-Date) -lt $deadline) { Start-Sleep -Seconds 2 }
if (Test-Path $app) { Fail "$app is still there after uninstalling: $((Get-ChildItem -Recurse $app | Select-Object -First 3).FullName)" }
if (Test-Path $shortcut) { Fail "the Start-menu shortcut is still there" }
$after = User-Files-Hash
if ($after.Hash -ne $before.Hash) { Fail "uninstalling changed the user's files" }
Record "uninstalled: the install folder and shortcut are gone; the user's $($after.Count) files are unchanged"

Write-Host ""
Write-Host "SMOKE TEST PASSED ($(Get-Date -Format yyyy-MM-dd), $([Environment]::OSVersion.VersionString), $env:NUMBER_OF_PROCESSORS cores)"
$results | ForEach-Object { Write-Host "  $_" }
