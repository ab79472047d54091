#!/usr/bin/env bash
# dts benchmark driver (issue 3): creates a netns with 200 veth interfaces
# (100 pairs), runs the dts daemon (sysfs provider, update=1000 ms) and
# prometheus-node-exporter (netdev collector only) inside it, both on
# 127.0.0.1, and runs `dts-bench netdev`, then `dts-bench events` and
# `dts-bench netflow` against the same dts. Everything it creates is
# removed on exit. Run as root from the repository root:
#   bench/dts-bench-netdev.sh [BUILD_DIR]     (default: build, a release build)
# Environment: IDLE (s, default 20), DURATION (s, 30), RATE (scrapes/s, 10),
# EVENTS (count, 5000000; 0 skips the events and NetFlow runs),
# FLOWS (count, 2000000), NAMING (dts or doca: dts's metric-naming),
# CSET (a comma list of counter-name tokens: written as bench.cset and a
# second pass scrapes /bench, the counter-set view, in the same run).
set -euo pipefail
BUILD=${1:-build}
IDLE=${IDLE:-20}; DURATION=${DURATION:-30}; RATE=${RATE:-10}
EVENTS=${EVENTS:-5000000}; FLOWS=${FLOWS:-2000000}
NAMING=${NAMING:-dts}; CSET=${CSET:-}
NS=dtsbench$$
TMP=$(mktemp -d /tmp/dts-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
{
  for i in $(seq 0 99); do
    echo "link add dbv${i}a type veth peer name dbv${i}b"
  done
  for i in $(seq 0 99); do
    echo "link set dbv${i}a up"; echo "link set dbv${i}b up"
  done
} > "$TMP/links"
ip -n "$NS" -batch "$TMP/links"
echo "netns $NS: $(ip -n "$NS" -o link | grep -c dbv) veth interfaces"

DTS_PORT=19281; NE_PORT=19282
# a UDP sink for dts's NetFlow datagrams, up before dts sends anything
ip netns exec "$NS" /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("127.0.0.1", 19283))
while True:
    s.recv(65536)
' &
PIDS+=("$!")
mkdir -p "$TMP/conf"
cat > "$TMP/conf/dts_config.ini" <<INI
update=1000
enable-provider=sysfs
prometheus=http://127.0.0.1:$DTS_PORT
netflow-collector-ip=127.0.0.1
netflow-collector-port=19283
metric-naming=$NAMING
INI
if [ -n "$CSET" ]; then
  mkdir -p "$TMP/conf/cset"
  tr ',' '\n' <<< "$CSET" > "$TMP/conf/cset/bench.cset"
  echo "prometheus-cset-dir=$TMP/conf/cset" >> "$TMP/conf/dts_config.ini"
fi
ip netns exec "$NS" "$BUILD/dts/dts" --config-dir "$TMP/conf" \
    --ipc-dir "$TMP/ipc" --log-file "$TMP/dts.log" &
DTS_PID=$!; PIDS+=("$DTS_PID")
ip netns exec "$NS" prometheus-node-exporter --collector.disable-defaults \
    --collector.netdev --web.listen-address=127.0.0.1:$NE_PORT \
    > "$TMP/ne.log" 2>&1 &
NE_PID=$!; PIDS+=("$NE_PID")
for _ in $(seq 100); do
  if ip netns exec "$NS" curl -sf "http://127.0.0.1:$DTS_PORT/metrics" >/dev/null &&
     ip netns exec "$NS" curl -sf "http://127.0.0.1:$NE_PORT/metrics" >/dev/null &&
     [ -S "$TMP/ipc/dts.sock" ]; then break; fi
  sleep 0.1
done
sleep 3   # a few collection cycles before measuring
echo "dts series: $(ip netns exec "$NS" curl -s "http://127.0.0.1:$DTS_PORT/metrics" | grep -vc '^#')," \
     "node_exporter netdev series: $(ip netns exec "$NS" curl -s "http://127.0.0.1:$NE_PORT/metrics" | grep -c '^node_network_')"
BENCH="$BUILD/bench/dts-bench"
echo "== /metrics (metric-naming=$NAMING)"
ip netns exec "$NS" "$BENCH" netdev \
    --dts-url "http://127.0.0.1:$DTS_PORT/metrics" --dts-pid "$DTS_PID" \
    --ne-url "http://127.0.0.1:$NE_PORT/metrics" --ne-pid "$NE_PID" \
    --idle "$IDLE" --duration "$DURATION" --rate "$RATE"
if [ -n "$CSET" ]; then
  echo "== /bench (counter set: $CSET; series:" \
       "$(ip netns exec "$NS" curl -s "http://127.0.0.1:$DTS_PORT/bench" | grep -vc '^#'))"
  ip netns exec "$NS" "$BENCH" netdev \
      --dts-url "http://127.0.0.1:$DTS_PORT/bench" --dts-pid "$DTS_PID" \
      --ne-url "http://127.0.0.1:$NE_PORT/metrics" --ne-pid "$NE_PID" \
      --idle "$IDLE" --duration "$DURATION" --rate "$RATE"
fi
if [ "$EVENTS" = 0 ]; then exit 0; fi
ip netns exec "$NS" "$BENCH" events --socket "$TMP/ipc/dts.sock" \
    --metrics-url "http://127.0.0.1:$DTS_PORT/metrics" --count "$EVENTS" \
    --pid "$DTS_PID"
ip netns exec "$NS" "$BENCH" netflow --count "$FLOWS" \
    --socket "$TMP/ipc/dts.sock" \
    --metrics-url "http://127.0.0.1:$DTS_PORT/metrics"
