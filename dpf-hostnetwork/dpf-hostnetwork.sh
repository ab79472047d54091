#!/bin/bash
# dpf-hostnetwork: the host side of a DPU's network, run by the DPU's
# <dpu>-hostnetwork pod (dpf-spec 2.7.5; our own take on DPF's
# hostnetwork.sh). Every few seconds, until stopped:
#   1. find PF0's netdev under SYSFS/bus/pci/devices/PCI.0/net;
#   2. if the PF can do SR-IOV and has no VFs yet, create NUM_VFS of them
#      (PF1 too when it is a BlueField-3/-2 function, 0xa2dc/0xa2d6);
#   3. once bridge br-dpu exists with an IPv4 address, put PF0's VF0 into
#      it (MTU, up) unless it is there already;
#   4. touch the ready file (the pod's readiness probe looks for it).
# A PF without SR-IOV (an emulated host whose sysfs has no sriov_totalvfs)
# has nothing to attach: the script says so once and becomes ready.
# On SIGTERM it takes VF0 out of the bridge again and removes the file.
set -u

usage() {
    cat <<USAGE
usage: dpf-hostnetwork --pci DOMAIN:BUS:DEV [--num-vfs N] [--mtu MTU]
                       [--sysfs DIR] [--bridge NAME] [--ready-file FILE]
                       [--interval SECONDS]
USAGE
    exit 2
}

pci= num_vfs=16 mtu=1500 sysfs=/sys bridge=br-dpu
ready=/tmp/hostnetwork_succeed interval=5
while [ $# -gt 0 ]; do
    case "$1" in
    --pci) pci=$2; shift 2 ;;
    --num-vfs) num_vfs=$2; shift 2 ;;
    --mtu) mtu=$2; shift 2 ;;
    --sysfs) sysfs=$2; shift 2 ;;
    --bridge) bridge=$2; shift 2 ;;
    --ready-file) ready=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "dpf-hostnetwork: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$pci" ] || usage
case "$num_vfs$mtu$interval" in
*[!0-9.]*) echo "dpf-hostnetwork: --num-vfs, --mtu and --interval are numbers" >&2
           exit 2 ;;
esac

attached=
said=
say() { # print a state line once per change
    if [ "$said" != "$1" ]; then
        echo "dpf-hostnetwork: $1"
        said=$1
    fi
}

cleanup() {
    if [ -n "$attached" ]; then
        ip link set dev "$attached" nomaster 2>/dev/null &&
            echo "dpf-hostnetwork: $attached taken out of $bridge"
    fi
    rm -f "$ready"
    exit 0
}
trap cleanup TERM INT

first_netdev() {
    local d=$1/net
    [ -d "$d" ] || return 1
    local n
    for n in "$d"/*; do
        [ -e "$n" ] && { basename "$n"; return 0; }
    done
    return 1
}

ensure_vfs() { # $1 = PCI function directory
    local f=$1
    [ -f "$f/sriov_numvfs" ] || return 0
    local cur
    cur=$(cat "$f/sriov_numvfs" 2>/dev/null || echo 0)
    if [ "$cur" = 0 ] && [ "$num_vfs" != 0 ]; then
        if echo "$num_vfs" > "$f/sriov_numvfs" 2>/dev/null; then
            echo "dpf-hostnetwork: $num_vfs VFs created on $(basename "$f")"
        else
            say "cannot create VFs on $(basename "$f")"
        fi
    fi
}

step() {
    local pf0=$sysfs/bus/pci/devices/$pci.0
    local pf1=$sysfs/bus/pci/devices/$pci.1
    local dev
    if ! dev=$(first_netdev "$pf0"); then
        say "waiting for PF0 ($pci.0) to have a netdev"
        return 1
    fi
    if [ ! -f "$pf0/sriov_totalvfs" ]; then
        say "PF0 $dev has no SR-IOV here: no VF to attach"
        return 0
    fi
    ensure_vfs "$pf0"
    local id
    id=$(cat "$pf1/device" 2>/dev/null || true)
    if [ "$id" = 0xa2dc ] || [ "$id" = 0xa2d6 ]; then
        ensure_vfs "$pf1"
    fi
    local vf
    if ! vf=$(first_netdev "$pf0/virtfn0"); then
        say "waiting for VF0 of $dev"
        return 1
    fi
    if ! ip -4 addr show dev "$bridge" 2>/dev/null | grep -q 'inet '; then
        say "waiting for bridge $bridge to have an IPv4 address"
        return 1
    fi
    if [ ! -e "/sys/class/net/$bridge/brif/$vf" ] &&
       ! ip -o link show dev "$vf" 2>/dev/null | grep -q " master $bridge "; then
        if ! ip link set dev "$vf" master "$bridge" mtu "$mtu" up; then
            say "cannot add $vf to $bridge"
            return 1
        fi
        echo "dpf-hostnetwork: $vf added to $bridge (mtu $mtu)"
    fi
    attached=$vf
    return 0
}

while :; do
    if step; then
        if [ ! -e "$ready" ]; then
            mkdir -p "$(dirname "$ready")" && touch "$ready" &&
                echo "dpf-hostnetwork: ready"
            said=
        fi
    else
        rm -f "$ready"
    fi
    sleep "$interval" &
    wait $!
done
