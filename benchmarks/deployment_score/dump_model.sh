#!/bin/bash
# dump_model.sh RUN_NAME: dumps runs/RUN_NAME into dumps/RUN_NAME (a generated scene when
# scenes/RUN_NAME exists). Writes dumps/RUN_NAME/DONE at the end.
cd "$(dirname "$0")"
export PYTHONPATH=${CODE:?a checkout of b3a9277} XLA_FLAGS=--xla_force_host_platform_device_count=1
name=$1
extra=""
[ -d scenes/$name ] && extra="--scene scenes/$name"
[ -f dumps/$name/DONE ] && exit 0
${PYTHON:-python} dump.py --workdir runs/$name --out dumps/$name $extra > logs/dump_$name.log 2>&1 && touch dumps/$name/DONE
