#!/usr/bin/env bash
# The MNIST table of bench/results/: a dcgan d=64 teacher, a d=2 student distilled by pixel MSE,
# the student exported (ONNX fp32, TFLite fp32 and int8), the paper's baseline (a d=2 GAN trained
# from scratch for as many steps as the student; lr 1e-3, since at DCGAN's 2e-4 a d=2 generator
# hardly leaves its grey start), and `edgegan bench` over all of them.
# Uses the real MNIST from $EDGEGAN_DATA (default ../shared/datasets). About 20 min on 2 CPU cores.
#   bash bench/scripts/mnist.sh            (TEACHER_STEPS, STUDENT_STEPS, SAMPLES, OUT override the defaults)
set -euo pipefail
cd "$(dirname "$0")/../.."
export EDGEGAN_DATA="${EDGEGAN_DATA:-$(cd .. && pwd)/shared/datasets}"
OUT="${OUT:-runs/mnist}"
E=.venv/bin/edgegan
rm -rf "$OUT"
$E train-teacher --dataset mnist --d 64 --steps "${TEACHER_STEPS:-2000}" --sample-every 1000 --checkpoint-every 1000 \
  --out "$OUT/teacher64"
$E distill --teacher "$OUT/teacher64" --d 2 --steps "${STUDENT_STEPS:-3000}" --out "$OUT/student2"
$E export "$OUT/student2" --format onnx
$E export "$OUT/student2" --format tflite
$E export "$OUT/student2" --format tflite --quantize int8 --batch 1,64
$E train-teacher --dataset mnist --kind baseline --d 2 --lr 1e-3 --steps "${STUDENT_STEPS:-3000}" --sample-every 1000 \
  --checkpoint-every 1000 --out "$OUT/baseline2"
$E bench "$OUT/student2" --baseline "$OUT/baseline2" --samples "${SAMPLES:-5000}" --out "$OUT/bench"
cp "$OUT/bench/bench.json" bench/results/mnist.json
cp "$OUT/bench/bench.md" bench/results/mnist.md
cp "$OUT/bench/samples.png" bench/results/mnist-samples.png
cp "$OUT/bench/pareto.png" bench/results/mnist-pareto.png
cp "$OUT/student2/samples/teacher_vs_student.png" bench/results/mnist-teacher-vs-student.png
