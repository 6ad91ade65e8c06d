#!/usr/bin/env bash
# Fetches real photos for demos and manual checks from Debian packages (apt-get download, then
# dpkg-deb extracts just the photo; nothing is installed, no other network access is needed):
#   astronaut.png    512x512 RGB, one person            python3-skimage: skimage/data/astronaut.png
# with --all also (opencv-doc, a ~95 MB package):
#   basketball1.png  640x480 greyscale, two people      opencv-doc: examples/data/basketball1.png
#   messi5.jpg       548x342 JPEG, a player and a crowd opencv-doc: examples/data/messi5.jpg
#
# usage: scripts/fetch_demo_image.sh [--all] [DEST_DIR]      (DEST_DIR defaults to data/)
# Idempotent: photos already in DEST_DIR are kept. Exits non-zero with a message if apt fails.
set -euo pipefail

ALL=0
DEST=""
for arg in "$@"; do
  case "$arg" in
    --all) ALL=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "fetch_demo_image: unknown option $arg" >&2; exit 2 ;;
    *) DEST="$arg" ;;
  esac
done
if [ -z "$DEST" ]; then DEST="$(cd "$(dirname "$0")/.." && pwd)/data"; fi
mkdir -p "$DEST"

# package | path inside the package | file name in DEST
WANT=("python3-skimage|usr/lib/python3/dist-packages/skimage/data/astronaut.png|astronaut.png")
if [ "$ALL" = 1 ]; then
  WANT+=("opencv-doc|usr/share/doc/opencv-doc/examples/data/basketball1.png|basketball1.png"
         "opencv-doc|usr/share/doc/opencv-doc/examples/data/messi5.jpg|messi5.jpg")
fi

missing=()
for w in "${WANT[@]}"; do
  IFS='|' read -r pkg path name <<<"$w"
  if [ -s "$DEST/$name" ]; then
    echo "fetch_demo_image: $DEST/$name already there"
  else
    missing+=("$w")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null || { echo "fetch_demo_image: apt-get not found (Debian/Ubuntu needed)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"   # apt-get download may run as the _apt user

fetched_pkgs=" "
for w in "${missing[@]}"; do
  IFS='|' read -r pkg path name <<<"$w"
  if [[ "$fetched_pkgs" != *" $pkg "* ]]; then
    # Package lists may be missing on a fresh machine: refresh them once if we can.
    if ! apt-cache show "$pkg" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq || true
    fi
    echo "fetch_demo_image: downloading $pkg"
    if ! (cd "$TMP" && apt-get download -q "$pkg" >"$TMP/apt.log" 2>&1); then
      echo "fetch_demo_image: 'apt-get download $pkg' failed:" >&2
      sed 's/^/  /' "$TMP/apt.log" >&2
      echo "fetch_demo_image: (try 'apt-get update' as root first)" >&2
      exit 1
    fi
    deb=$(ls "$TMP"/"${pkg}"_*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || { echo "fetch_demo_image: no .deb for $pkg after download" >&2; exit 1; }
    mkdir -p "$TMP/x"
    # Only the wanted members (a dpkg -x of opencv-doc would write 270 MB).
    members=()
    for v in "${missing[@]}"; do
      IFS='|' read -r p2 path2 _ <<<"$v"
      [ "$p2" = "$pkg" ] && members+=("./$path2")
    done
    if ! dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$TMP/x" "${members[@]}"; then
      echo "fetch_demo_image: extracting ${members[*]} from $deb failed" >&2
      exit 1
    fi
    rm -f "$deb"
    fetched_pkgs+="$pkg "
  fi
  src="$TMP/x/$path"
  [ -s "$src" ] || { echo "fetch_demo_image: $pkg does not contain /$path" >&2; exit 1; }
  magic=$(head -c 4 "$src" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    89504e47|ffd8ff*) ;;
    *) echo "fetch_demo_image: /$path from $pkg is not a PNG or JPEG (starts $magic)" >&2; exit 1 ;;
  esac
  cp "$src" "$DEST/$name.tmp" && mv "$DEST/$name.tmp" "$DEST/$name"
  echo "fetch_demo_image: $DEST/$name ($(stat -c %s "$DEST/$name") bytes, from $pkg)"
done
