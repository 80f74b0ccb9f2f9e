#!/usr/bin/env bash
# The .deb as a user gets it, in one command (as root, on a Debian/Ubuntu machine; takes about 10 minutes):
#
#   packaging/smoke_test_deb.sh dist/fine-tune-studio_0.1.0_amd64.deb
#
# Installs the package, then, outside any virtual environment and with an empty home folder, opens the window
# offscreen and runs `ftstudio demo --steps 2` (train, check what it learned, merge, export with the bundled
# llama.cpp converter, the GGUF answering in llama.cpp); upgrades to a second build with a higher version and
# checks that the user's projects and runs are untouched and still open; uninstalls and checks that the app
# is gone and the user's files are not.
# Prints package size, installed size and the time to the first window; the package is removed at the end.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root: it installs the package with dpkg" >&2; exit 1; }
DEB=$(readlink -f "$1")
NAME=fine-tune-studio
APP=/opt/$NAME
WORK=$(mktemp -d /tmp/ftstudio-smoke.XXXXXX)
USER_HOME=$WORK/home
mkdir -p "$USER_HOME"
results=()
note() { echo "[$(date +%H:%M:%S)] $*"; }
fail() { echo "SMOKE TEST FAILED: $*" >&2; exit 1; }
record() { results+=("$1"); note "$1"; }
load() { cut -d' ' -f1 /proc/loadavg; }  # the machine may be shared: times mean more beside its load
cleanup() { if dpkg -s "$NAME" >/dev/null 2>&1; then dpkg -r "$NAME" >/dev/null; fi; }
trap cleanup EXIT
dpkg -s "$NAME" >/dev/null 2>&1 && fail "$NAME is installed already; remove it first (dpkg -r $NAME)"

# A user's session: the system PATH, no virtual environment, no Python settings, an empty home.
as_user() { (cd "$USER_HOME" && env -i HOME="$USER_HOME" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"); }

install_deb() {  # dpkg, then apt for the system libraries the package depends on, as `apt install ./x.deb` does
  if ! dpkg -i "$1" >"$WORK/dpkg.log" 2>&1; then
    grep -q "dependency problems" "$WORK/dpkg.log" || { cat "$WORK/dpkg.log"; fail "dpkg -i $1"; }
    note "installing the system libraries it depends on (apt-get -f install)"
    apt-get install -f -y -q >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; fail "apt-get -f install"; }
  fi
  [ "$(dpkg-query -W -f='${Status}' "$NAME")" = "install ok installed" ] || fail "$NAME is not installed"
}

first_window() {  # sets shown_s (command to window on screen) and last_project, from `ftstudio gui --smoke`
  local start line shown=""
  start=$(date +%s%N)
  while IFS= read -r line; do
    echo "    $line" >>"$WORK/gui.log"
    case "$line" in
      "Window shown:"*) shown=$(( ($(date +%s%N) - start) / 1000000 )) ;;
      "Project: "*) last_project=${line#Project: } ;;
      "Icons: MISSING") fail "the window's icons did not load" ;;
    esac
  done < <(as_user ftstudio gui --smoke 2>&1)
  [ -n "$shown" ] || { cat "$WORK/gui.log"; fail "the window did not open"; }
  shown_s=$(printf '%d.%03d' $((shown / 1000)) $((shown % 1000)))
}

user_files_checksum() { (cd "$USER_HOME" && find . -type f ! -path './.cache/*' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16; }

# 1. Install
note "installing $DEB"
install_deb "$DEB"
record "package: $(basename "$DEB"), $(du -m "$DEB" | cut -f1) MB; installed size $(du -sm "$APP" | cut -f1) MB under $APP"
[ -x /usr/bin/ftstudio ] || fail "/usr/bin/ftstudio is missing"
[ -f /usr/share/applications/$NAME.desktop ] || fail "the menu entry is missing"
grep -q "^Exec=$APP/python/bin/ftstudio gui %f" /usr/share/applications/$NAME.desktop || fail "menu entry's Exec"
[ -f /usr/share/icons/hicolor/scalable/apps/$NAME.svg ] || fail "the menu icon is missing"
if command -v desktop-file-validate >/dev/null; then desktop-file-validate /usr/share/applications/$NAME.desktop; fi
ldd "$APP/python/bin/python3" | grep libpython | grep -q "=> $APP/python/" || fail "the app's Python does not use its own libpython"
touch "$WORK/installed-mark"

# 2. The window, the first time (an empty home: the starter project is made) and a second time
first_window; record "first window, first start (empty home, starter project made): ${shown_s} s (load $(load))"
first_window; record "first window, second start: ${shown_s} s (load $(load))"
project_before=$last_project
case "$project_before" in "$USER_HOME/Documents/Fine-Tune Studio/"*) ;; *) fail "starter project at $project_before";; esac

# 3. The demo, offline, from the installed package
note "ftstudio demo --steps 2"
started=$(date +%s)
as_user ftstudio demo --steps 2 >"$WORK/demo.log" 2>&1 || { tail -30 "$WORK/demo.log"; fail "ftstudio demo"; }
record "ftstudio demo --steps 2: $(( $(date +%s) - started )) s (load $(load)); $(grep -m1 '^Wall time per stage' "$WORK/demo.log")"
grep -q "^The exported Q4_K_M: " "$WORK/demo.log" || fail "the demo did not check its exported GGUF in llama.cpp"
gguf=$(find "$USER_HOME/demo-out" -name '*Q4_K_M*.gguf' | head -1)
[ -n "$gguf" ] || fail "no Q4_K_M GGUF in demo-out"
ls "$USER_HOME"/.cache/$NAME/tools/llama.cpp-converter-* >/dev/null 2>&1 && fail "the demo fetched a converter: the bundled one was not used"
record "exported: $(cd "$USER_HOME" && find demo-out -name '*.gguf' | sort | tr '\n' ' ')(bundled converter used)"
written=$(find "$APP" /usr/bin/ftstudio -newer "$WORK/installed-mark" | head -5)
[ -z "$written" ] || fail "the app wrote into its installed folder: $written"
dpkg --verify "$NAME" || fail "installed files were changed"

# 4. Upgrade to a second build with a higher version: the user's projects and runs stay and still open
version=$(dpkg-deb -f "$DEB" Version)
dpkg-deb -R "$DEB" "$WORK/next"
sed -i "s/^Version: .*/Version: ${version}+smoke1/" "$WORK/next/DEBIAN/control"
dpkg-deb --root-owner-group -Zzstd -z1 --build "$WORK/next" "$WORK/next.deb" >/dev/null
rm -rf "$WORK/next"
before=$(user_files_checksum)
note "upgrading to ${version}+smoke1"
install_deb "$WORK/next.deb"
[ "$(dpkg-query -W -f='${Version}' "$NAME")" = "${version}+smoke1" ] || fail "the upgrade did not install"
[ "$(user_files_checksum)" = "$before" ] || fail "the upgrade changed the user's files"
first_window
[ "$last_project" = "$project_before" ] || fail "after the upgrade the app opened $last_project, not $project_before"
record "after the upgrade: the last project reopened ($last_project), first window ${shown_s} s (load $(load))"
as_user ftstudio chat "$gguf" --prompt "What colour is milk?" --max-tokens 30 >"$WORK/chat.log" 2>&1 \
  || { cat "$WORK/chat.log"; fail "the upgraded app could not chat with the earlier run's GGUF"; }
record "after the upgrade: the earlier run's GGUF answers: $(tr '\n' ' ' < "$WORK/chat.log" | cut -c1-80)"

# 5. Uninstall: the app goes, the user's files stay
before=$(user_files_checksum)
dpkg -r "$NAME" >/dev/null
[ ! -e "$APP" ] || fail "$APP is still there after dpkg -r: $(find "$APP" | head -5)"
[ ! -e /usr/bin/ftstudio ] && [ ! -e /usr/share/applications/$NAME.desktop ] || fail "files left after dpkg -r"
[ "$(user_files_checksum)" = "$before" ] || fail "uninstalling changed the user's files"
record "after dpkg -r: $APP, /usr/bin/ftstudio and the menu entry are gone; the user's $(cd "$USER_HOME" && find . -type f ! -path './.cache/*' | wc -l) files (projects, runs, settings) are unchanged"

echo
echo "SMOKE TEST PASSED ($(date +%Y-%m-%d), $(uname -m), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"))"
printf '  %s\n' "${results[@]}"
rm -rf "$WORK"
