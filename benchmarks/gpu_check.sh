#!/usr/bin/env bash
# For GPU owners: does mnistgen work on this GPU, and how fast? Nobody on the project has run it on one.
#
#   bash benchmarks/gpu_check.sh [--data DIR]     # DIR: the four MNIST IDX files (else downloaded)
#
# Checks what only a GPU can show, one PASS, FAIL or SKIP line each, then prints the figures:
#   doctor      `mnistgen doctor --json` (saved): a GPU that passes its test, its decoder against the CPU's
#   train       one training epoch of the default CVAE on the GPU (with its companion classifier)
#   generate    100,000 images (10,000 per digit) to HDF5 on the GPU
#   repeat      the README's "a run repeats under the same seed" on a GPU (FLAGS_cudnn_deterministic):
#               the same seed twice gives the same image bytes, and the same weights after a short training
#   launch      with two GPUs or more, the README's data-parallel recipe (paddle.distributed.launch --gpus,
#               NCCL), and the same launch training on the CPUs (--device cpu: gloo on a CUDA build)
# Exit 1 when a check fails. Attach the output and gpu_check/doctor.json to an issue. Needs a CUDA Paddle
# (pip install "mnistgen[gpu]") and `mnistgen` on PATH. PYTHON: the interpreter mnistgen is installed in
# (default python3). GPU_CHECK_OUT: the output folder (default gpu_check, emptied first).
# GPU_CHECK_DEVICE=cpu tries the script itself on a machine without a GPU (it then tests no GPU).
set -euo pipefail
out=${GPU_CHECK_OUT:-gpu_check}
py=${PYTHON:-python3}
device=${GPU_CHECK_DEVICE:-gpu}
data_args=("$@")
[ ${#data_args[@]} -eq 0 ] && data_args=(--download)
failed=0
pass() { echo "PASS  $*"; }
fail() {
    echo "FAIL  $*"
    failed=1
}
skip() { echo "SKIP  $*"; }

if ! command -v mnistgen > /dev/null || ! "$py" -c "import mnistgen, paddle" 2> /dev/null; then
    echo "FAIL  mnistgen or Paddle not found: pip install \"mnistgen[gpu]\", and set PYTHON to its interpreter"
    exit 1
fi
rm -rf "$out" && mkdir -p "$out"

echo "== mnistgen doctor"
doctor_rc=0
mnistgen doctor --json > "$out/doctor.json" || doctor_rc=$?
[ -s "$out/doctor.json" ] || { fail "doctor wrote no report (exit $doctor_rc)"; exit 1; }
rows_rc=0
"$py" - "$out/doctor.json" "$device" << 'PY' || rows_rc=$?
import json, sys
report, device = json.load(open(sys.argv[1])), sys.argv[2]
env, rows = report["environment"], {row["check"]: row for row in report["checks"]}
print(f"Paddle {env['paddle']} (CUDA {env['paddle_cuda']}, cuDNN {env['paddle_cudnn']}), device {env['device']}, "
      f"GPU {env.get('gpu')}, {env['cpus_usable']} usable CPUs")
for row in report["checks"]:
    if row["check"].startswith("self-test") or row["status"] != "ok":
        print(f"  {row['status']:4}  {row['check']}: {row['detail']}" + (f" ({row['fix']})" if row.get("fix") else ""))
if device == "gpu" and not env["device"].startswith("gpu"):
    gpu = rows.get("GPU", {})
    fix = gpu.get("fix") or 'pip install "mnistgen[gpu]"'
    print(f"FAIL  doctor: jobs would run on the CPU: {gpu.get('detail')}; {fix}")
    sys.exit(2)
if device == "gpu":
    row = rows.get("self-test: GPU decoder", {"status": "missing", "detail": "no such row"})
    print(f"{'PASS' if row['status'] == 'ok' else 'FAIL'}  doctor: the GPU decoder against the CPU's: {row['detail']}")
failed = [row["check"] for row in report["checks"] if row["status"] == "fail"]
print(f"FAIL  doctor: {', '.join(failed)}" if failed else "PASS  doctor: no fail row")
sys.exit(1 if failed else 0)
PY
[ "$rows_rc" -eq 2 ] && exit 1
[ "$rows_rc" -eq 0 ] && [ "$doctor_rc" -eq 0 ] || failed=1

echo "== one training epoch on the $device"
if mnistgen train "${data_args[@]}" --epochs 1 --latent 16 --device "$device" --out "$out/run" > "$out/train.json"; then
    pass "train: one epoch of the default CVAE on the $device"
    tail -n 1 "$out/train.json"
else
    fail "train: one epoch of the default CVAE on the $device (exit $?)"
fi

echo "== 100,000 images to HDF5 on the $device"
if mnistgen generate --digit all --count 10000 --device "$device" --seed 1 --out "$out/synth.h5" --quiet > "$out/generate.json"; then
    pass "generate: 100,000 images to HDF5 on the $device"
    cat "$out/generate.json"
else
    fail "generate: 100,000 images to HDF5 on the $device (exit $?)"
fi

echo "== the same seed twice on the $device"
same=1
for run in a b; do
    mnistgen generate --digit all --count 1000 --device "$device" --seed 7 --format idx --out "$out/repeat-$run" --quiet > /dev/null || same=0
done
for file in "$out"/repeat-a/*-ubyte.gz; do
    [ -f "$file" ] && cmp -s "$file" "$out/repeat-b/${file##*/}" || same=0
done
if [ "$same" -eq 1 ]; then
    pass "repeat: generate with the same seed gives the same image bytes"
else
    fail "repeat: generate with the same seed twice gave other images (or failed): see $out/repeat-a and -b"
fi
same=1
for run in a b; do
    mnistgen train "${data_args[@]}" --epochs 1 --limit 2000 --no-classifier --seed 7 --device "$device" \
        --out "$out/train-$run" --quiet > /dev/null || same=0
done
cmp -s "$out/train-a/model.safetensors" "$out/train-b/model.safetensors" || same=0
if [ "$same" -eq 1 ]; then
    pass "repeat: training with the same seed gives the same weights"
else
    fail "repeat: training with the same seed twice gave other weights (or failed): see $out/train-a and -b"
fi

echo "== data-parallel training with Paddle's launcher"
gpus=0
if [ "$device" = gpu ]; then
    gpus=$("$py" -c "import paddle; print(paddle.device.cuda.device_count())" 2> /dev/null | tail -n 1) || gpus=0
fi
if [ "${gpus:-0}" -ge 2 ]; then
    for ranks_on in gpu cpu; do # cpu: the same launch on a CUDA build must take gloo, not NCCL
        logs="$out/launch-$ranks_on"
        if "$py" -m paddle.distributed.launch --gpus 0,1 --log_dir "$logs" "$(command -v mnistgen)" train --distributed \
            "${data_args[@]}" --epochs 1 --limit 2000 --no-classifier --device "$ranks_on" --out "$out/dp-$ranks_on" \
            > "$logs.out" 2>&1 && [ -s "$out/dp-$ranks_on/model.safetensors" ]; then
            pass "launch: two ranks (--gpus 0,1) training on the $ranks_on"
        else
            fail "launch: two ranks (--gpus 0,1) training on the $ranks_on: see $logs.out and $logs/workerlog.*"
        fi
    done
else
    skip "launch: needs two GPUs (this machine has ${gpus:-0} usable)"
fi

if [ -s "$out/train.json" ] && [ -s "$out/generate.json" ]; then
    "$py" - "$out" << 'PY'
import json, sys
out = sys.argv[1]
train = json.loads(open(f"{out}/train.json").read().strip().splitlines()[-1])
gen = json.loads(open(f"{out}/generate.json").read().strip().splitlines()[-1])
print(f"figures: training epoch {train['seconds']:.1f} s, {train['images_per_s']:.0f} images/s (its steps; the "
      f"whole command {train['seconds_total']:.1f} s with the evaluation, companion classifier and calibration); "
      f"generate {gen['count']} images to HDF5: {gen['images_per_s']:.0f} images/s "
      f"(decoder {gen['decoder']}, {gen['precision']})")
PY
fi
[ "$failed" -eq 0 ] && echo "all checks passed" || echo "a check failed: see the FAIL lines above"
exit "$failed"
