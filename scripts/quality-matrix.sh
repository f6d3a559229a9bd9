#!/usr/bin/env bash
# The multi-seed quality runs of results/README.md, as a queue: every (configuration, seed, arm)
# whose JSON is missing under results/quality/ runs, two at a time (one per core), from a
# snapshot of the built CLI, so editing the tree does not change a running job. Rerun to continue
# after an interruption (a finished run is never repeated; an interrupted one starts over).
# Baselines run first; a recipe run waits for its seed's baseline and switches at the baseline's
# steps at the latest (--switch-by-step), so it never exceeds them by more than 25%.
#   bash scripts/quality-matrix.sh [DATA_DIR] [JOBS]     (DATA_DIR default ../shared/datasets)
#   DRY=1 bash scripts/quality-matrix.sh                 (print the queue, run nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
JOBS=${2:-2}
OUT=results/quality
SNAP=$(mktemp -d /tmp/ckv-snapshot.XXXX)
mkdir -p "$OUT"

# name | data file | format | flags (the window-filtered protocol is reported: the baselines beat Markov under it)
CONFIGS=(
  "sasrec-beauty-p10|amazon-beauty/Beauty.txt|lines|--model sasrec --max-length 50 --hidden-dim 64 --dropout 0.5 --epochs 80 --patience 10 --validation-users 5000 --filter-window"
  "hstu-beauty-p10|amazon-beauty/Beauty.txt|lines|--model hstu --max-length 50 --hidden-dim 64 --dropout 0.5 --epochs 80 --patience 10 --validation-users 5000 --filter-window"
  "sasrec-ml1m-p10|ml-1m/ml-1m.txt|lines|--model sasrec --max-length 200 --hidden-dim 64 --dropout 0.2 --epochs 80 --patience 10 --validation-users 5000 --filter-window"
  "hstu-ml1m-p10|ml-1m/ml-1m.txt|lines|--model hstu --max-length 200 --hidden-dim 64 --dropout 0.2 --epochs 80 --patience 10 --validation-users 5000 --filter-window"
)
SEEDS=(1 2 3)

jobs_file=$(mktemp)
for arm in mha collectivekv; do
  for config in "${CONFIGS[@]}"; do
    IFS='|' read -r name file format flags <<<"$config"
    for seed in "${SEEDS[@]}"; do
      json="$OUT/$name-s$seed-$arm.json"
      [[ -f "$json" ]] && continue
      run="node $SNAP/bin/collectivekv.js bench quality $flags --data $DATA/$file --format $format --seed $seed --arm $arm"
      if [[ $arm == collectivekv ]]; then
        baseline="$OUT/$name-s$seed-mha.json"
        run="while [[ ! -f $baseline ]]; do sleep 60; done; $run --switch-by-step \$(node -p \"require('./$baseline').mha.steps\")"
      fi
      echo "{ $run --json $json.partial && mv $json.partial $json; } > $OUT/$name-s$seed-$arm.log 2>&1" >>"$jobs_file"
    done
  done
done
if [[ -n "${DRY:-}" ]]; then cat "$jobs_file"; exit 0; fi
npm run build --silent
cp -r dist bin package.json "$SNAP"/ && ln -s "$PWD/node_modules" "$SNAP/node_modules"
echo "snapshot of $(git rev-parse --short HEAD) in $SNAP"
echo "$(wc -l <"$jobs_file") runs to go, $JOBS at a time; logs in $OUT/*.log"
xargs -P "$JOBS" -I{} bash -c '{}' <"$jobs_file"
npm run results --silent
