#!/bin/sh
# telemetry-run.sh: the image's main command, named as DOCA's. Runs dts on
# the container's mounts; extra arguments go to dts.
exec /usr/bin/dts --config-dir=/config --ipc-dir=/tmp/ipc_sockets "$@"
