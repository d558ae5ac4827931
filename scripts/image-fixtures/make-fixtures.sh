#!/bin/sh
# Rebuilds Tests/MagicInitImagesTests/Fixtures from the project's photo folder.
#   scripts/image-fixtures/make-fixtures.sh PHOTO_DIR
# PHOTO_DIR holds the photos and their SOURCES.tsv (shared/data/photos). Only photos whose
# licence there is "Public Domain" or "CC0-1.0" are used; CREDITS.md is written by hand.
# Needs: cc, libturbojpeg0-dev, libstb-dev, python3 (standard library only).
set -eu
photos=${1:?usage: make-fixtures.sh PHOTO_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../Tests/MagicInitImagesTests/Fixtures"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/mkfix" "$here/mkfix.c" -lturbojpeg -lstb -lm
mkdir -p "$out"

for name in 000_gcompris__fishes__fish1 028_gcompris__monuments__IndiaGate \
            036_gcompris__monuments__eiffelTower 049_gcompris__monuments__parthenon \
            061_gcompris__renewable__solar1 085_gcompris__tools__hammer1; do
  licence=$(awk -F'\t' -v f="$name.jpg" '$1 == f { print $4 }' "$photos/SOURCES.tsv")
  case "$licence" in
    "Public Domain"|"CC0-1.0") ;;
    *) echo "$name: licence '$licence' is not Public Domain or CC0-1.0" >&2; exit 1 ;;
  esac
  "$tmp/mkfix" rgb "$photos/$name.jpg" "$out/$name.jpg" 160 85
done
"$tmp/mkfix" png  "$photos/049_gcompris__monuments__parthenon.jpg" "$out/png_parthenon.png" 160
"$tmp/mkfix" gray "$photos/061_gcompris__renewable__solar1.jpg" "$out/gray_solar1.jpg" 160 85
"$tmp/mkfix" cmyk "$photos/085_gcompris__tools__hammer1.jpg" "$out/cmyk_hammer1.jpg" 96 90

python3 - "$out" <<'PY'
import struct, sys, zlib, random
out = sys.argv[1]

def png(path, width, height, rows):
    """8-bit RGB PNG, filter 0 on every row; rows[y][x] = (r, g, b)."""
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in rows)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

# 4 wide, 3 high; pixel (x, y) = (10 + 60x, 20 + 70y, 250 - 20x - 50y), plus pure corners.
rows = [[(10 + 60 * x, 20 + 70 * y, 250 - 20 * x - 50 * y) for x in range(4)] for y in range(3)]
rows[0][0] = (255, 0, 0); rows[0][3] = (0, 255, 0); rows[2][0] = (0, 0, 255); rows[2][3] = (0, 0, 0)
png(f"{out}/known_4x3.png", 4, 3, rows)
png(f"{out}/solid_200_100_50.png", 6, 4, [[(200, 100, 50)] * 6 for _ in range(4)])

# A JPEG signature followed by junk: no decoder can read it.
rng = random.Random(20160101)
with open(f"{out}/broken.jpg", "wb") as f:
    f.write(b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(60)))
# The first 40 % of a real JPEG: libjpeg-turbo decodes it with a warning.
data = open(f"{out}/000_gcompris__fishes__fish1.jpg", "rb").read()
with open(f"{out}/truncated_fish1.jpg", "wb") as f:
    f.write(data[: len(data) * 2 // 5])
PY
printf '%s\n' "# Images for ImageCollection.listImages tests: one path per line, relative to this file." \
  "000_gcompris__fishes__fish1.jpg" "" "png_parthenon.png 7" "$out/nonexistent.jpg" \
  | sed "s#$out/##" > "$out/images.txt"
ls -l "$out"
