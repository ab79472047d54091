#!/bin/sh
# telemetry-init.sh: fill an empty DTS config directory from a preset, as
# DOCA's init container does. Runs in the image's init container before
# dts starts; does nothing when the directory already holds a
# configuration (so an operator's edits survive restarts; delete
# dts_config.ini and restart to get the preset back).
#
#   DTS_CONFIG_DIR   preset name (default "default"); one directory per
#                    preset under DTS_PRESETS_DIR
#   DTS_PRESETS_DIR  where presets live (default /usr/share/dts/presets)
#   DTS_CONFIG       the config directory to fill (default /config)
#
# Exit 0 when the directory holds a configuration afterwards, 1 with a
# message naming the preset when the preset does not exist.
set -eu

preset=${DTS_CONFIG_DIR:-default}
presets=${DTS_PRESETS_DIR:-/usr/share/dts/presets}
cfg=${DTS_CONFIG:-/config}

case $preset in
*/* | .* | '')
    echo "telemetry-init: DTS_CONFIG_DIR=$preset: not a preset name" >&2
    exit 1
    ;;
esac
if [ ! -f "$presets/$preset/dts_config.ini" ]; then
    echo "telemetry-init: DTS_CONFIG_DIR=$preset: no such preset;" \
        "available: $(ls "$presets" | tr '\n' ' ')" >&2
    exit 1
fi
mkdir -p "$cfg"
if [ -e "$cfg/dts_config.ini" ] || [ -e "$cfg/dts_config.yaml" ]; then
    echo "telemetry-init: $cfg already configured; preset $preset not applied"
    exit 0
fi
# Files a preset brings (fluent_bit_configs/*.exp, ...) first, the main
# file last and by rename, so dts never sees a half-written config.
(cd "$presets/$preset" && find . -type d) | while read -r d; do
    mkdir -p "$cfg/$d"
done
(cd "$presets/$preset" && find . -type f ! -name dts_config.ini) |
    while read -r f; do
        [ -e "$cfg/$f" ] || cp "$presets/$preset/$f" "$cfg/$f"
    done
cp "$presets/$preset/dts_config.ini" "$cfg/.dts_config.ini.tmp"
mv "$cfg/.dts_config.ini.tmp" "$cfg/dts_config.ini"
echo "telemetry-init: wrote $cfg/dts_config.ini from preset $preset"
