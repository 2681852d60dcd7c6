#!/usr/bin/env bash
# The seed records behind RESULTS.md's "mean ± sd over seeds" tables.
#
# Seeds vary the VAE (initialisation, sampling noise, shuffling). The DR classifier
# and the judge are trained once per data set and copied into every seed's folder,
# so the instrument that scores the edits is the same for every seed.
#
#   bash results/seeds.sh synthetic 1 2      # after `make demo` (seed 0 = the demo)
#   bash results/seeds.sh celeba 0 1 2       # the shared real subset
#
# A variant of the default: NAME names its weights and records, EXTRA adds train flags,
# RECORDS is the records' folder (default results/edits_<NAME>), CLASSIFIER the real runs'
# shared DR classifier (default weights/celeba_seed0/classifier):
#   NAME=synthetic_bf16 EXTRA="--precision bfloat16" bash results/seeds.sh synthetic 0 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
what=$1; shift
name=${NAME:-$what}
read -r -a extra <<< "${EXTRA:-}"
records=${RECORDS:-results/edits_$name}
shared=${CLASSIFIER:-weights/celeba_seed0/classifier}
for seed in "$@"; do
  if [ "$what" = synthetic ]; then
    data=data/synthetic; weights=weights/${name}_seed$seed; base=weights/synthetic
    train=(--seed "$seed")
  else
    data=${CELEBA:-../shared/data/celeba}; weights=weights/${name}_seed$seed; base=weights/pretrained
    # The shipped judge (30 epochs; 6 before this round: JUDGE_EPOCHS=6); the DR classifier
    # of the first seed run, shared by the others.
    train=(--seed "$seed" --epochs "${REAL_EPOCHS:-6}" --classifier-epochs 5 --judge-epochs "${JUDGE_EPOCHS:-30}")
  fi
  mkdir -p "$weights"
  [ -d "$weights/judge" ] || cp -r "$base/judge" "$weights/"
  if [ "$what" = synthetic ]; then
    [ -d "$weights/classifier" ] || cp -r "$base/classifier" "$weights/"
  elif [ ! -d "$weights/classifier" ] && [ -d "$shared" ]; then
    cp -r "$shared" "$weights/"
  fi
  $PY -m dealwithit train --data "$data" --weights "$weights" "${train[@]}" "${extra[@]}"
  $PY -m dealwithit vector --data "$data" --weights "$weights"
  $PY -m dealwithit evaluate --data "$data" --weights "$weights" \
    --json "outputs/$(basename "$weights")/metrics.json" --record "$records/seed$seed.json"
done
