#!/usr/bin/env bash
# Many machines on one study with Slurm: every array task is a worker of the same studies on one
# PostgreSQL server. `run` returns once the whole search budget is finished (by any worker), so
# every task then joins `confirm`, and task 0 writes the report once the confirmation is done.
# With outer folds (`--preset full` has 3) every task works through them in order, all tasks on
# one outer fold's searches at a time; `--outer-fold K` in RUN_OPTIONS runs one of them alone.
#
#   install -m 600 /dev/null ~/.cmi-storage        # readable by you only
#   echo 'postgresql://USER:PASSWORD@HOST:5432/DB' > ~/.cmi-storage
#   sbatch examples/slurm_array.sh
#
# The URL, password included, goes from that file into CMI_STORAGE: it never appears in a command
# line (`ps` on a shared node shows every user's). Options for `run` come from RUN_OPTIONS, e.g.
#   sbatch --export=ALL,RUN_OPTIONS='--preset full --arms fixed,uncertainty --data /shared/cmi' examples/slurm_array.sh
#SBATCH --job-name=cmi-study
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=24:00:00
# One GPU per task, if the cluster has them (each task then sees only its own):
##SBATCH --gres=gpu:1
set -euo pipefail

STORAGE_FILE=${STORAGE_FILE:-$HOME/.cmi-storage}  # the secret: one line, the storage URL
STUDY=${STUDY:-cmi}                                 # studies STUDY-ARM, STUDY-confirm (STUDY-outerK-… nested)
RUN_OPTIONS=${RUN_OPTIONS:---preset full}          # the same for every task (a worker with others is refused)
DATA=${DATA:-}                                      # train.csv + train_demographics.csv; empty: the embedded data
REPORT=${REPORT:-reports/$STUDY.html}               # written by task 0 (a shared folder)
TASK=${SLURM_ARRAY_TASK_ID:?run under sbatch --array, or set SLURM_ARRAY_TASK_ID}

CMI_STORAGE=$(<"$STORAGE_FILE")  # a shell builtin: no process holds the URL in its arguments
export CMI_STORAGE
# Each task prepares its folds in its own cache, on the node's local disk.
export CMI_CACHE_DIR=${CMI_CACHE_DIR:-${TMPDIR:-/tmp}/cmi-cache-${SLURM_ARRAY_JOB_ID:-local}-$TASK}

data=()
[ -n "$DATA" ] && data=(--data "$DATA")
# shellcheck disable=SC2086  # RUN_OPTIONS is a list of options
cmi-study run --study-name "$STUDY" "${data[@]}" $RUN_OPTIONS
cmi-study confirm --study-name "$STUDY" "${data[@]}"
if [ "$TASK" = 0 ]; then
    mkdir -p "$(dirname "$REPORT")"
    cmi-study report --study-name "$STUDY" --out "$REPORT"
fi
