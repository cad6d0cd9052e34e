#!/usr/bin/env bash
# A Slurm array job: 8 tasks write one million synthetic digits (100,000 per digit) into one
# directory. Task i writes shard i/8 (counting from 0): the same pixels and file names a single
# run would write, so the shards together equal `mnistgen generate ... --seed 2024` run once.
#
#   sbatch examples/slurm_array.sh
#
#SBATCH --job-name=mnistgen
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --time=00:30:00
set -euo pipefail
# mnistgen uses the CPUs Slurm gives the task (SLURM_CPUS_PER_TASK); a killed task is finished by
# resubmitting it: --resume writes only the missing files.
mnistgen generate --digit all --count 100000 --seed 2024 --out synth/ \
  --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" --resume --quiet
# After the array: one metadata.jsonl for Hugging Face `imagefolder`, in global order:
#   cat synth/metadata.shard-*-of-00008.jsonl > synth/metadata.jsonl
