#!/usr/bin/env bash
# The GPU measurements in one run (what reports/paper/gpu/ was made from), for a machine with
# one CUDA device: the CUDA tests, the throughput benches on the device, and the paper profile's
# first stage: its train and val subjects simulated, ST-Net trained for a fixed wall-clock budget
# (epoch time and learning curve), then whole-brain maps of a paper-size subject by each method.
#
#   bench/gpu.sh OUT_DIR [TRAIN_SECONDS=150] [JOBS=14]
#
# Uses $PYTHON (default python3) as it is: the machine's own torch. OUT_DIR gets machine.txt,
# gpu.log (every step's output, with time stamps), paper_learning_curve.csv and
# paper_learning_curve_compiled.csv (the same training with --compile reduce-overhead).
set -uo pipefail
out=${1:?usage: bench/gpu.sh OUT_DIR [TRAIN_SECONDS] [JOBS]}
train_seconds=${2:-150}
jobs=${3:-14}
py=${PYTHON:-python3}
data=${STNET_GPU_DATA:-/tmp/stnet-paper}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1  # no progress bars in the log
mkdir -p "$out"
stamp() { echo "== $(date +%s) $(date -u +%T) $*" | tee -a "$out/gpu.log"; }

stamp machine
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  nproc; } 2>&1 | tee "$out/machine.txt"

stamp tests
$py -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -n 15 | tee -a "$out/gpu.log"

stamp bench stnet
$py bench/stnet.py --device cuda --threads 8 --seconds 4 2>&1 | tee -a "$out/gpu.log"
stamp bench svd
$py bench/deconvolution.py --device cuda --voxels 1000000 --loop-voxels 200 2>&1 | tee -a "$out/gpu.log"
stamp bench ttv
$py bench/deconvolution_ttv.py --device cuda 2>&1 | tee -a "$out/gpu.log"

stamp simulate paper train+val
$py -m stnet_lib.cli simulate --profile paper --out "$data" --limit 52 --jobs "$jobs" 2>&1 | tail -n 2 | tee -a "$out/gpu.log"

stamp train paper "(${train_seconds} s budget)"
timeout --signal=INT "$train_seconds" $py -m stnet_lib.cli train --manifest "$data/data_manifest.csv" --profile paper \
  --out "$data/run" --device cuda --no-progress 2>&1 | tail -n 5 | tee -a "$out/gpu.log"
cp "$data/run/learning_curve.csv" "$out/paper_learning_curve.csv"

# the same budget with the step compiled (CUDA graphs; issue #17): the epochs' `seconds` of the two curves
# are the before and after of one run (the first compiled epoch includes the compilation)
stamp train paper compiled "(${train_seconds} s budget)"
timeout --signal=INT "$train_seconds" $py -m stnet_lib.cli train --manifest "$data/data_manifest.csv" --profile paper \
  --out "$data/run-compiled" --device cuda --no-progress --compile reduce-overhead 2>&1 | tail -n 5 | tee -a "$out/gpu.log"
cp "$data/run-compiled/learning_curve.csv" "$out/paper_learning_curve_compiled.csv"

sub="$data/sub-052"  # a validation subject: 256x256x20x50
te=$($py -c "import pandas as pd; m = pd.read_csv('$data/data_manifest.csv'); print(m.set_index('subject_id').te_ms['sub-052'])")
for method in osvd ttv stnet; do
  stamp maps "$method"
  extra=$([ "$method" = stnet ] && echo "--checkpoint $data/run/best.pt")
  start=$(date +%s.%N)
  $py -m stnet_lib.cli maps --dsc "$sub/dsc.nii.gz" --aif-mask "$sub/aif_mask.nii.gz" --brain-mask "$sub/brain_mask.nii.gz" --vof-mask "$sub/vof_mask.nii.gz" \
    --te-ms "$te" --method "$method" $extra --device cuda --out "$data/maps-$method" --overwrite 2>&1 | tail -n 2
  echo "$method $(awk "BEGIN {print $(date +%s.%N) - $start}") s (whole command: start-up, reading, maps, writing)" | tee -a "$out/gpu.log"
done
stamp done
