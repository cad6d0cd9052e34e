#!/usr/bin/env bash
# For GPU owners: is mnistgen right and fast on this GPU? Nobody on the project has run it on one.
#
#   bash benchmarks/gpu_check.sh [--data DIR]     # DIR: the four MNIST IDX files (else downloaded)
#
# Runs `mnistgen doctor` (its JSON is saved), one training epoch of the default CVAE on the GPU, and
# 100,000 images (10,000 per digit) generated to HDF5, then prints the figures. Attach the output
# and gpu_check/doctor.json to an issue. Needs a CUDA Paddle: pip install "mnistgen[gpu]".
set -euo pipefail
out=${GPU_CHECK_OUT:-gpu_check}
data_args=("$@")
[ ${#data_args[@]} -eq 0 ] && data_args=(--download)
rm -rf "$out" && mkdir -p "$out"

echo "== mnistgen doctor"
doctor_rc=0
mnistgen doctor --json > "$out/doctor.json" || doctor_rc=$?
[ -s "$out/doctor.json" ] && python3 - "$out/doctor.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
env = report["environment"]
print(f"Paddle {env['paddle']} (CUDA {env['paddle_cuda']}, cuDNN {env['paddle_cudnn']}), device {env['device']}, "
      f"GPU {env.get('gpu')}, {env['cpus_usable']} usable CPUs")
for row in report["checks"]:
    if row["check"].startswith("self-test") or row["status"] != "ok":
        print(f"  {row['status']:4}  {row['check']}: {row['detail']}")
PY
[ "$doctor_rc" -eq 0 ] || { echo "doctor failed (exit $doctor_rc): see the rows above and $out/doctor.json"; exit 1; }

echo "== one training epoch on the GPU"
mnistgen train "${data_args[@]}" --epochs 1 --latent 16 --device gpu --out "$out/run" > "$out/train.json"
tail -n 1 "$out/train.json"

echo "== 100,000 images to HDF5 on the GPU"
mnistgen generate --digit all --count 10000 --device gpu --seed 1 --out "$out/synth.h5" --quiet > "$out/generate.json"
cat "$out/generate.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
train = json.loads(open(f"{out}/train.json").read().strip().splitlines()[-1])
gen = json.loads(open(f"{out}/generate.json").read().strip().splitlines()[-1])
print(f"figures: training epoch {train['seconds']:.1f} s, {train['images_per_s']:.0f} images/s (its steps; the "
      f"whole command {train['seconds_total']:.1f} s with the evaluation, companion classifier and calibration); "
      f"generate {gen['count']} images to HDF5: {gen['images_per_s']:.0f} images/s "
      f"(decoder {gen['decoder']}, {gen['precision']})")
PY
