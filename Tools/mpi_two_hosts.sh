#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces rc-host-a and rc-host-b joined by a veth pair
# (10.99.0.1 and 10.99.0.2), no other link between them. mpirun runs in host A; Open MPI starts
# the rank of host B through a launch agent that enters the namespace (instead of ssh), and
# `--mca btl tcp,self` makes the ranks talk TCP over the veth pair. Runs mpi-check --train
# (collectives and the exactness check) and a short data-parallel train, then removes the
# namespaces. Needs root (ip netns) and Tools/mpi_check.sh's MPI build.
# Usage: sudo bash Tools/mpi_two_hosts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "mpi_two_hosts: needs root for ip netns" >&2; exit 1; }
bin=$PWD/.build-mpi/release/recurrent
[ -x "$bin" ] || swift build -c release --traits MPI --product recurrent --scratch-path .build-mpi
work=$(mktemp -d)
cleanup() {
  ip netns del rc-host-a 2>/dev/null || true
  ip netns del rc-host-b 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d)
ip netns add rc-host-a
ip netns add rc-host-b
ip link add rc-veth-a type veth peer name rc-veth-b
ip link set rc-veth-a netns rc-host-a
ip link set rc-veth-b netns rc-host-b
ip -n rc-host-a addr add 10.99.0.1/24 dev rc-veth-a
ip -n rc-host-b addr add 10.99.0.2/24 dev rc-veth-b
for ns in rc-host-a rc-host-b; do
  ip -n $ns link set lo up
  ip -n $ns link set rc-veth-${ns#rc-host-} up
done
# (no ping needed: mpirun fails in one line if host B cannot be reached)
# The launch agent: Open MPI calls it as `agent HOST command...` where it would call ssh.
cat > "$work/agent" <<'AGENT'
#!/bin/sh
host=$1
shift
case $host in
  10.99.0.1) ns=rc-host-a ;;
  10.99.0.2) ns=rc-host-b ;;
  *) echo "agent: unknown host $host" >&2; exit 1 ;;
esac
exec ip netns exec $ns sh -c "$*"
AGENT
chmod +x "$work/agent"
printf '10.99.0.1 slots=1\n10.99.0.2 slots=1\n' > "$work/hosts"
mpi=(mpirun --allow-run-as-root -np 2 --hostfile "$work/hosts" --mca plm_rsh_agent "$work/agent"
  --mca btl tcp,self --mca btl_tcp_if_include 10.99.0.0/24 --mca oob_tcp_if_include 10.99.0.0/24
  -x PATH)
cd "$work"
echo "== mpi-check --train across the veth pair"
ip netns exec rc-host-a "${mpi[@]}" "$bin" mpi-check --count 4000000 --train
echo "== recurrent train, 2 ranks over TCP"
ip netns exec rc-host-a "${mpi[@]}" "$bin" train --hidden 256 --embedding 128 --batch 64 --seq-len 64 \
  --steps 30 --eval-every 0 --sample-every 0 --checkpoint "$work/m.safetensors" --text "$OLDPWD/Data/tinyshakespeare.txt"
echo "== SIGKILL of host B's rank during training"
ip netns exec rc-host-a "${mpi[@]}" "$bin" train --hidden 128 --batch 8 --seq-len 32 --steps 1000000 \
  --eval-every 0 --sample-every 0 --checkpoint "$work/k.safetensors" --text "$OLDPWD/Data/tinyshakespeare.txt" \
  > "$work/kill.out" 2>&1 &
job=$!
for _ in $(seq 100); do grep -q "training" "$work/kill.out" 2>/dev/null && break; sleep 0.2; done
sleep 2
victim=$(for pid in $(ip netns pids rc-host-b); do
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = recurrent ] && echo $pid; done | head -1)
kill -KILL "$victim"
start=$(date +%s)
status=0
wait $job || status=$?
echo "the job ended with status $status $(( $(date +%s) - start )) s after the SIGKILL; what the ranks and mpirun said:"
grep -v "^step" "$work/kill.out" | grep -v "^ *$" | head -12
[ $status != 0 ] || { echo "mpi two hosts: the job exited 0 after a rank was killed" >&2; exit 1; }
echo "== bytes on the veth pair"
ip -n rc-host-a -s link show rc-veth-a | sed -n '3,6p'
echo "mpi two hosts: ok"
