#!/usr/bin/env bash
# A sweep as a SLURM job array on a real single-node cluster on this machine: plan a 4-run
# smoke sweep, submit it with `credit sweep --slurm --submit`, wait (bounded) for the array,
# check that all four runs completed and the report lists them, stop the daemons.
#
#   tests/slurm/run.sh CREDIT     CREDIT: the credit binary (e.g. target/release/credit)
#
# Run from the repository root, as root (it installs slurm-wlm and munge if they are missing).
# Fails, with the daemons' logs, if the cluster cannot start.
set -euo pipefail

credit=$(realpath "${1:?usage: tests/slurm/run.sh path/to/credit}")
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/credit-slurm.XXXXXX)
trap '"$here/cluster.sh" stop "$scratch/cluster" || true' EXIT

"$here/cluster.sh" start "$scratch/cluster"
sinfo --version

sweep="$scratch/sweep"
"$credit" sweep --config configs/smoke.toml --set data.train_size=500,1000 \
  --set train.epochs=2 --set data.test_size=500 --out "$sweep" --plan
started=$(date +%s)
"$credit" sweep --dir "$sweep" --slurm --submit --cpus 1 --max-parallel 2 --time 00:10:00

# Wait for the array: every run done, or give up after 5 minutes.
deadline=$((started + 300))
shown=
while :; do
  status=$("$credit" sweep --dir "$sweep" --status)
  if grep -q "^4 runs: 4 done" <<<"$status"; then break; fi
  # What a user sees while the array runs (once).
  if [ -z "$shown" ] && grep -q "running" <<<"$status"; then
    echo "--- credit sweep --status while the array runs:"
    echo "$status"
    shown=1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$status"
    echo "the job array did not finish within 5 minutes; task output:" >&2
    tail -n 30 "$sweep"/slurm/task-*.out >&2 || true
    exit 1
  fi
  sleep 2
done
echo "$status"
echo "the 4-task array finished in $(($(date +%s) - started)) s"

# The same four runs on this machine without SLURM, two at a time, for comparison.
"$credit" sweep --config configs/smoke.toml --set data.train_size=500,1000 \
  --set train.epochs=2 --set data.test_size=500 --out "$scratch/local" --plan >/dev/null
local_started=$(date +%s)
"$credit" sweep --dir "$scratch/local" --jobs 2 >/dev/null
echo "the same 4 runs with --jobs 2 took $(($(date +%s) - local_started)) s"

"$credit" sweep --dir "$sweep" --report
for setting in data.train_size=500 data.train_size=1000; do
  grep -q "$setting" "$sweep/report.html" || { echo "report.html lacks $setting" >&2; exit 1; }
done
# Each task wrote its output where the script said.
ls "$sweep"/slurm/task-{0,1,2,3}.out >/dev/null
echo "SLURM sweep test passed"
