#!/usr/bin/env bash
# The face's frame cost on a GPU machine (issue 20's figure): the stage against the one-sphere
# scene, landscape and portrait, each variant in portrait, and the animation's cost per frame.
# Runs where the GPU is, in a copy of the checkout, with what it needs carried beside it in
# DIR (ignored by git): hiwar.xz (a release `hiwar`, stripped, xz), timeline.json (from
# `hiwar say --timeline`, so no voice model is needed there), and the Debian packages it may
# lack: DIR/libasound2*.deb (cpal links it) and, in .gl/, the Vulkan and GL loaders.
# Usage: tests/measure/gpu-face.sh DIR [FRAMES]
set -u
cd "$(dirname "$0")/../.."
dir=${1:?DIR}; frames=${2:-300}
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done; ldconfig
mkdir -p /tmp/alsa && for f in "$dir"/libasound2*.deb; do [ -e "$f" ] && dpkg -x "$f" /tmp/alsa; done
export LD_LIBRARY_PATH=/tmp/alsa/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('/tmp/hiwar', 'wb'))" "$dir/hiwar.xz" && chmod +x /tmp/hiwar
nvidia-smi -L
export BEVY_ASSET_ROOT=$PWD WGPU_BACKEND=vulkan
if ! /tmp/hiwar doctor 2>&1 | grep -q -i nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
/tmp/hiwar doctor 2>&1 | grep -i graphics
run() {
  echo "### $1 ${2:-}"
  env ${2:-HIWAR_STAGE_VARIANT=hair} /tmp/hiwar bench face --only frame-time --frames "$frames" --timeline "$dir/timeline.json" --size "$1" 2>&1 | grep -v -i -e warn -e '^\s*$'
}
run 1920x1080; run 640x360; run 1080x1920
run 1080x1920 HIWAR_STAGE_VARIANT=ghutra; run 1080x1920 HIWAR_STAGE_VARIANT=hijab
run 1920x1080
/tmp/hiwar bench face --only animation --timeline "$dir/timeline.json" 2>&1 | grep -i cost
