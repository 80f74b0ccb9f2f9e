; Fine-Tune Studio's Windows installer (Inno Setup 6). Built by packaging\windows\build.ps1, which passes
; AppVersion, AppFolder (the self-contained app folder made by packaging\app_folder.py) and Compression.
;
; A per-user install by default (no administrator needed; the install dialog offers all users), under
; Program Files for all users or %LOCALAPPDATA%\Programs for one. The user's projects (Documents\Fine-Tune
; Studio), settings and caches (AppData) live outside {app}: an upgrade or an uninstall never touches them.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef AppFolder
  #define AppFolder "..\..\build\win\app"
#endif
#ifndef Compression
  #define Compression "lzma2/max"
#endif

[Setup]
AppId={{6B0F3C2E-7F1D-4C61-9B8A-3E5D2A9C4F17}
AppName=Fine-Tune Studio
AppVersion={#AppVersion}
AppPublisher=Fine-Tune Studio
DefaultDirName={autopf}\Fine-Tune Studio
DefaultGroupName=Fine-Tune Studio
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputBaseFilename=fine-tune-studio-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\app.ico
UninstallDisplayIcon={app}\app.ico
UninstallDisplayName=Fine-Tune Studio
Compression={#Compression}
SolidCompression=yes
LZMANumBlockThreads=4
; with CUDA torch the compressed app is about 3 GB; past 4.2 GB Inno Setup needs DiskSpanning=yes (setup-*.bin)
DiskSpanning=no
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[InstallDelete]
; An upgrade replaces the app's Python whole: files of libraries the new version no longer has (an older torch's
; dist-info beside the new one) must not linger. Only the app's own folder; the user's files are elsewhere.
Type: filesandordirs; Name: "{app}\python"

[Files]
Source: "{#AppFolder}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; pythonw.exe: the window without a console. The ._pth file beside it keeps the user's Python settings out.
Name: "{autoprograms}\Fine-Tune Studio"; Filename: "{app}\python\pythonw.exe"; Parameters: "-m studio.cli gui"; \
  WorkingDir: "{userdocs}"; IconFilename: "{app}\app.ico"; Comment: "Fine-tune a language model on your own GPU"
Name: "{autodesktop}\Fine-Tune Studio"; Filename: "{app}\python\pythonw.exe"; Parameters: "-m studio.cli gui"; \
  WorkingDir: "{userdocs}"; IconFilename: "{app}\app.ico"; Tasks: desktopicon

[Run]
Filename: "{app}\python\pythonw.exe"; Parameters: "-m studio.cli gui"; WorkingDir: "{userdocs}"; \
  Description: "{cm:LaunchProgram,Fine-Tune Studio}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; anything Python wrote into the app's own folder (it should write nothing: the app is compiled when built)
Type: filesandordirs; Name: "{app}\python"
