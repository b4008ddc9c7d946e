#!/bin/bash
# Trains the shipped Ped2 CPU recipe four times, each holding out one quarter of the 16
# training videos (part:i/4 in name order) for calibration / false-alarm measurement.
# No evaluation at the end (eval_at_end=False): the Ped2 test split is never scored.
set -e
cd "$(dirname "$0")"
export PYTHONPATH=${CODE:?a checkout of b3a9277} XLA_FLAGS=--xla_force_host_platform_device_count=1
for i in ${FOLDS:-0 1 2 3}; do
  [ -f runs/ped2_part${i}of4/DONE ] && continue
  ${PYTHON:-python} -m vad_jax.train --config ucsd_ped2:cpu --workdir runs/ped2_part${i}of4 \
    --config.data.manual_dir=${PED2:?the UCSD Ped2 release} --config.data.data_dir=$PWD/tfds \
    --config.calibration.videos=part:${i}/4 --config.eval_at_end=False \
    > logs/train_ped2_part${i}of4.log 2>&1
  touch runs/ped2_part${i}of4/DONE
  ./dump_model.sh ped2_part${i}of4 || true
done
