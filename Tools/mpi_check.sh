#!/usr/bin/env bash
# Builds recurrent with the MPI trait (Open MPI: apt-get install -y openmpi-bin libopenmpi-dev)
# into its own scratch folder and checks data-parallel training on RANKS ranks (default 2):
#  1. the collectives, and 5 steps of SGD and Adam (clipping, dropout 0 and 0.2) against one
#     process on the whole batch and in RANKS micro-batches (recurrent mpi-check --train);
#  2. recurrent train under mpirun trains, saves, and resumes as one process (another N);
#  3. SIGTERM to one rank: every rank stops after the same step, rank 0 saves, exit 0;
#     SIGUSR1 to mpirun (forwarded to every rank) likewise;
#  4. SIGKILL of one rank: the job ends non-zero within 30 s; a rank that cannot finish its
#     step after a stop signal (its peer stopped) says so in one line and exits 1;
#  5. a batch that does not divide by the ranks is refused in one line, before any file is written.
# Usage: bash Tools/mpi_check.sh [RANKS] [extra mpirun options, e.g. --mca btl tcp,self]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-2}
shift || true
scratch=.build-mpi
swift build -c release --traits MPI --product recurrent --scratch-path "$scratch"
bin=$PWD/$scratch/release/recurrent
run=(mpirun --oversubscribe -np "$ranks" "$@")
[ "$(id -u)" = 0 ] && run=(mpirun --allow-run-as-root --oversubscribe -np "$ranks" "$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "mpi check: $*" >&2; exit 1; }

# 1. Collectives and exactness.
"${run[@]}" "$bin" mpi-check --count 1000000 --train

# 2. Train on N ranks, then resume as one process.
small=(--hidden 64 --embedding 16 --batch 8 --seq-len 16 --eval-every 0 --sample-every 0)
"${run[@]}" "$bin" train "${small[@]}" --steps 6 --checkpoint "$work/dp.safetensors" > "$work/train.out"
grep -q "data-parallel on $ranks ranks" "$work/train.out" || fail "train did not run data-parallel"
grep -q "saved $work/dp.safetensors at step 6" "$work/train.out" || fail "rank 0 did not save at step 6"
[ "$(grep -c '^finished' "$work/train.out")" = 1 ] || fail "more than one rank reported"
"$bin" train --resume --checkpoint "$work/dp.safetensors" --steps 10 > "$work/resume.out"
grep -q "resuming at step 6" "$work/resume.out" && grep -q "finished at step 10" "$work/resume.out" \
  || fail "resuming as one process failed"

# 3. SIGTERM to one rank, SIGUSR1 to mpirun: all stop after one step, rank 0 saves, exit 0.
long=(--hidden 128 --batch 8 --seq-len 32 --eval-every 0 --sample-every 0 --steps 1000000)
for target in rank mpirun; do
  rm -f "$work/sig.safetensors"
  "${run[@]}" "$bin" train "${long[@]}" --checkpoint "$work/sig.safetensors" > "$work/sig.out" 2>&1 &
  job=$!
  for _ in $(seq 100); do grep -q "^step\|training" "$work/sig.out" 2>/dev/null && break; sleep 0.2; done
  sleep 2
  if [ $target = rank ]; then
    pkill -TERM -n -f "$bin train" || fail "no rank to signal"
  else
    pkill -USR1 -x mpirun || fail "no mpirun to signal"
  fi
  start=$(date +%s)
  status=0
  wait $job || status=$?
  took=$(( $(date +%s) - start ))
  [ $status = 0 ] || { cat "$work/sig.out"; fail "signal to $target: exit $status"; }
  [ $took -le 30 ] || fail "signal to $target: took $took s"
  [ -s "$work/sig.safetensors" ] || fail "signal to $target: no checkpoint"
  echo "mpi check: signal to $target: every rank stopped, rank 0 saved, exit 0 in $took s"
done

# 4. SIGKILL of one rank: the others must not hang.
"${run[@]}" "$bin" train "${long[@]}" --checkpoint "$work/kill.safetensors" > "$work/kill.out" 2>&1 &
job=$!
for _ in $(seq 100); do grep -q "^step\|training" "$work/kill.out" 2>/dev/null && break; sleep 0.2; done
sleep 2
pkill -KILL -n -f "$bin train" || fail "no rank to kill"
start=$(date +%s)
status=0
wait $job || status=$?
took=$(( $(date +%s) - start ))
[ $status != 0 ] || fail "SIGKILL of a rank: the job exited 0"
[ $took -le 30 ] || fail "SIGKILL of a rank: the others took $took s"
echo "mpi check: SIGKILL of a rank: the job ended with status $status in $took s"

# 4b. A rank that cannot finish its step after a stop signal (its peer is stopped, SIGSTOP)
#     exits 1 with one line after 25 s instead of waiting forever.
"${run[@]}" "$bin" train "${long[@]}" --checkpoint "$work/stuck.safetensors" > "$work/stuck.out" 2>&1 &
job=$!
for _ in $(seq 100); do grep -q "^step\|training" "$work/stuck.out" 2>/dev/null && break; sleep 0.2; done
sleep 2
ranks_pids=($(pgrep -f "^$bin train"))
kill -STOP "${ranks_pids[0]}"
kill -TERM "${ranks_pids[1]}"
start=$(date +%s)
status=0
wait $job || status=$?
took=$(( $(date +%s) - start ))
[ $status != 0 ] || fail "a rank whose peer was stopped exited 0"
[ $took -le 35 ] || fail "a rank whose peer was stopped took $took s"
grep -q "^Error: rank [0-9]*: stopped by signal 15, but the other ranks did not finish the step within 25 s" "$work/stuck.out" \
  || { cat "$work/stuck.out"; fail "no one-line error from the rank left waiting"; }
echo "mpi check: a rank left waiting after a stop signal exited 1 with one line in $took s"

# 5. Refusals before training.
status=0
"${run[@]}" "$bin" train --batch 7 --steps 1 --checkpoint "$work/odd.safetensors" > "$work/odd.out" 2>&1 || status=$?
[ $status != 0 ] || fail "--batch 7 on $ranks ranks was accepted"
grep -q "^Error: --batch 7 is the global batch and must divide by the $ranks ranks" "$work/odd.out" || { cat "$work/odd.out"; fail "no one-line refusal of --batch 7"; }
[ "$(grep -c '^Error:' "$work/odd.out")" = 1 ] || fail "the refusal was printed by more than one rank"
[ ! -e "$work/odd.safetensors" ] || fail "a refused run wrote a checkpoint"
echo "mpi check: ok"
