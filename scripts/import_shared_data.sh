#!/usr/bin/env bash
# One-off, committed step that copied the shipped reference data into data/.
# Run from the repository root with the shared material beside the checkout:
#   bash scripts/import_shared_data.sh [SHARED_DATA_DIR]
# The project never reads ../shared at run time; data/ is what ships.
set -euo pipefail
src=${1:-../shared/data}
dst=data
[ -d "$src" ] || { echo "import_shared_data: no such directory: $src" >&2; exit 2; }
mkdir -p "$dst/receptors" "$dst/atlases" "$dst/asl"
cp "$src"/receptors/*.nii.gz "$dst/receptors/"
cp -r "$src"/atlases/schaefer "$dst/atlases/"
cp -r "$src"/asl/ds000240 "$dst/asl/"
chmod -R u+w,a+r "$dst"
find "$dst" -type f -name '*.nii.gz' -exec chmod a-x {} +
find "$dst" -type f -name '*.json' -exec chmod a-x {} +
find "$dst" -type f -name '*.tsv' -exec chmod a-x {} +
( cd "$dst" && find receptors atlases asl -type f | sort | xargs sha256sum ) > "$dst/SHA256SUMS"
echo "copied reference data into $dst/ (checksums in $dst/SHA256SUMS)"
