#!/bin/bash
# Trains the CPU-sized network (16-32-64, 64x64 grayscale, the synthetic demo's
# alpha = beta = 0.01, Adam 1e-3 cosine, batch 8) on the 16 normal training videos of
# each generated scene (scenes.py), through the own_videos builder at native size.
set -e
cd "$(dirname "$0")"
[ -f runs/ped2_part0of4/DONE ] && ./dump_model.sh ped2_part0of4 || true
export PYTHONPATH=${CODE:?a checkout of b3a9277} XLA_FLAGS=--xla_force_host_platform_device_count=1
for s in ${SCENES:-walkway plaza}; do
  [ -f runs/$s/DONE ] && continue
  ${PYTHON:-python} -m vad_jax.train --config own_videos:cpu --workdir runs/$s \
    --config.data.manual_dir=$PWD/scenes/$s/footage --config.data.data_dir=$PWD/tfds_$s \
    --config.data.builder_config=default --config.data.image_size=64,64 --config.data.channels=1 \
    --config.model.widths=16,32,64 --config.loss.alpha=0.01 --config.loss.beta=0.01 \
    --config.num_train_steps=${STEPS:-800} --config.log_every_steps=50 --config.checkpoint_every_steps=400 \
    --config.eval_at_end=False --config.data.eval_split='' > logs/train_$s.log 2>&1
  touch runs/$s/DONE
  ./dump_model.sh $s || true
done
