#!/usr/bin/env bash
# The Linux desktop package, in one command (from run.sh's environment: `source .venv/bin/activate`):
#
#   packaging/build_deb.sh [--version 0.1.1] [--torch-index https://download.pytorch.org/whl/cu128]
#
# makes dist/fine-tune-studio_VERSION_ARCH.deb: the self-contained app folder (packaging/app_folder.py) under
# /opt/fine-tune-studio, /usr/bin/ftstudio, a menu entry and its icon. Needs dpkg-deb, dpkg-shlibdeps (dpkg-dev)
# and patchelf (`apt-get install dpkg-dev patchelf`). Takes 10-30 minutes; see packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
VERSION=""
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=$2; shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps patchelf; do
  command -v "$tool" >/dev/null || { echo "build_deb.sh needs $tool: apt-get install dpkg-dev patchelf" >&2; exit 1; }
done
VERSION=${VERSION:-$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}
ARCH=$(dpkg --print-architecture)
NAME=fine-tune-studio
APP=/opt/$NAME
STAGE=build/deb/root
started=$(date +%s)

rm -rf build/deb
mkdir -p build/deb dist
"$PYTHON" packaging/app_folder.py "$STAGE$APP" ${PASS[@]+"${PASS[@]}"}

# llama.cpp compiled from source is tuned to the building CPU (GGML_NATIVE): AVX-512 code would not run on
# most users' CPUs. This machine's CPU has AVX2 and no AVX-512; see packaging/README.md for other builders.
if objdump -d "$STAGE$APP"/python/lib/python3*/site-packages/llama_cpp/lib/libggml-cpu.so 2>/dev/null | grep -q zmm; then
  echo "warning: llama.cpp in this package uses AVX-512 and will not run on CPUs without it (packaging/README.md)" >&2
fi

# The command, the menu entry (written by the app's own rule for launchers) and the icon.
mkdir -p "$STAGE/usr/bin" "$STAGE/usr/share/applications" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
         "$STAGE/usr/share/doc/$NAME"
ln -s "$APP/python/bin/ftstudio" "$STAGE/usr/bin/ftstudio"
cp resources/icons/app.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/$NAME.svg"
env -u PYTHONPATH PYTHONNOUSERSITE=1 "$STAGE$APP/python/bin/python3" -c "
from pathlib import Path
from studio.shortcut import desktop_entry
print(desktop_entry(['$APP/python/bin/ftstudio', 'gui'], Path('$NAME')), end='')
" > "$STAGE/usr/share/applications/$NAME.desktop"
cat > "$STAGE/usr/share/doc/$NAME/copyright" <<TEXT
Fine-Tune Studio, licensed under the Apache License 2.0 (/usr/share/common-licenses/Apache-2.0).
The Python interpreter and libraries under $APP/python keep their own licences, in their dist-info folders.
TEXT

# Depends: the system libraries that the interpreter's modules and llama.cpp's library link to, as Debian's
# dpkg-shlibdeps finds them, plus those that Qt loads at run time for a desktop session (its xcb platform
# plugin; the libraries Qt documents for X11), which dpkg-shlibdeps cannot see on a machine without them.
# DEBIAN/ first: it marks the package's root, where dpkg-shlibdeps resolves $ORIGIN in llama.cpp's RPATH.
mkdir -p build/deb/shlibdeps/debian "$STAGE/DEBIAN"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$NAME" "$NAME" > build/deb/shlibdeps/debian/control
site=$(echo "$PWD/$STAGE$APP/python/lib/python3"*)
mapfile -t elves < <(find "$PWD/$STAGE$APP/python/bin" "$site/lib-dynload" "$site/site-packages/llama_cpp/lib" -type f \
                          \( -name 'python3.*' -o -name '*.so*' \))
pyver=$(basename "$site")  # the app's own libpython is no system package's
found=$(cd build/deb/shlibdeps && dpkg-shlibdeps -O --ignore-missing-info -x"lib$pyver" "${elves[@]/#/-e}" 2>../shlibdeps.log \
        | sed -n 's/^shlibs:Depends=//p') || true
[ -n "$found" ] || { echo "dpkg-shlibdeps failed; see build/deb/shlibdeps.log" >&2; exit 1; }
qt="libegl1, libgl1, libfontconfig1, libfreetype6, libglib2.0-0, libdbus-1-3, libx11-6, libx11-xcb1, libxkbcommon0, libxkbcommon-x11-0, libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xkb1"
installed_kb=$(du -sk "$STAGE" | cut -f1)

cat > "$STAGE/DEBIAN/control" <<TEXT
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: Fine-Tune Studio developers <fine-tune-studio@example.org>
Installed-Size: $installed_kb
Depends: ${found:+$found, }$qt
Section: science
Priority: optional
Description: fine-tune a language model on your own GPU, ending in a GGUF
 Point-and-click fine-tuning (LoRA, QLoRA, full) of language models, from a
 data file to a GGUF for llama.cpp, Ollama or LM Studio, with its own Python,
 libraries, llama.cpp converter and a small embedded model that works offline.
TEXT
chmod -R u+rwX,go+rX,go-w "$STAGE"
(cd "$STAGE" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
DEB="dist/${NAME}_${VERSION}_${ARCH}.deb"
echo "[$(date +%H:%M:%S)] packing $DEB"
dpkg-deb --root-owner-group -Zzstd --build "$STAGE" "$DEB"
echo "Built $DEB: $(du -m "$DEB" | cut -f1) MB, installed ${installed_kb} KB, in $(( $(date +%s) - started )) s"
