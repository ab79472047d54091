#!/bin/sh
# enable-fluent-forward.sh -i=<host> -p=<port> [-t=<tag>]: send every
# record dts exports to a Fluent Forward receiver (Fluent Bit, fluentd,
# NetQ), as DOCA's script of the same name does. Writes
# fluent_bit_configs/forward.exp in the config directory and points
# dts_config.ini's fluentbit-config-dir at it. Run it after
# telemetry-init.sh (in the init container) or at any time: dts applies
# the change without a restart.
#
#   DTS_CONFIG   the config directory (default /config)
set -eu

cfg=${DTS_CONFIG:-/config}
host=
port=
tag=doca_telemetry
usage() {
    echo "usage: enable-fluent-forward.sh -i=<host> -p=<port> [-t=<tag>]" >&2
    exit 2
}
for a in "$@"; do
    case $a in
    -i=*) host=${a#-i=} ;;
    -p=*) port=${a#-p=} ;;
    -t=*) tag=${a#-t=} ;;
    -h | --help) usage ;;
    *)
        echo "enable-fluent-forward: unknown argument $a" >&2
        usage
        ;;
    esac
done
[ -n "$host" ] && [ -n "$port" ] || usage
case $host in
*[!A-Za-z0-9.:_-]*)
    echo "enable-fluent-forward: -i=$host: not a host name or address" >&2
    exit 2
    ;;
esac
case $port in
'' | *[!0-9]*) bad=1 ;;
*) if [ "$port" -ge 1 ] && [ "$port" -le 65535 ]; then bad=; else bad=1; fi ;;
esac
if [ -n "$bad" ]; then
    echo "enable-fluent-forward: -p=$port: not a port (1-65535)" >&2
    exit 2
fi
case $tag in
'' | *[!A-Za-z0-9._-]*)
    echo "enable-fluent-forward: -t=$tag: use letters, digits, . _ -" >&2
    exit 2
    ;;
esac

ini=$cfg/dts_config.ini
if [ ! -f "$ini" ]; then
    echo "enable-fluent-forward: $ini missing; run telemetry-init.sh first" >&2
    exit 1
fi
dir=$cfg/fluent_bit_configs
mkdir -p "$dir"
printf '%s\n' "# Written by enable-fluent-forward.sh." \
    "plugin_name=forward" "enable=1" "host=$host" "port=$port" "tag=$tag" \
    >"$dir/.forward.exp.tmp"
mv "$dir/.forward.exp.tmp" "$dir/forward.exp"
# Point dts at the directory: replace an existing (or commented-out) key,
# else append it.
if grep -q '^[#;]*[[:space:]]*fluentbit-config-dir[[:space:]]*=' "$ini"; then
    sed "s|^[#;]*[[:space:]]*fluentbit-config-dir[[:space:]]*=.*|fluentbit-config-dir=$dir|" \
        "$ini" >"$ini.tmp"
else
    { cat "$ini"; echo "fluentbit-config-dir=$dir"; } >"$ini.tmp"
fi
mv "$ini.tmp" "$ini"
echo "enable-fluent-forward: records go to $host:$port (tag $tag)"
