"""The comparison table: every candidate x smoothing on every scene's leave-videos-out
rotations. Per-model results are cached (results/<tag>/<model>.pkl), so a model trained
later is added by running again.

  python run_all.py --tag final

Scenes and rotations:
* ped2: every dumps/ped2_part*of4 (one model each); per model all 6 (2 calibration, 2
  measurement) splits of its 4 held-out videos.
* walkway, plaza: dumps/<scene>; its 8 unseen normal videos split in halves 4 ways
  (first/second, even/odd, and swapped); the 12 labelled anomalous videos are scored in
  every rotation.
"""

import argparse
import glob
import json
import os
import pickle
import time

import numpy as np

import candidates
import score_lib as sl

KS = (1, 3, 5)


def scenes():
  out = {}
  ped2 = sorted(p for p in glob.glob("dumps/ped2_part*of4") if os.path.exists(os.path.join(p, "DONE")))
  if ped2:
    out["ped2"] = [(p, "pairs") for p in ped2]
  for s in ("walkway", "plaza"):
    if os.path.exists(f"dumps/{s}/DONE"):
      out[s] = [(f"dumps/{s}", "half")]
  return out


def run_model(path, kind, cands, tag):
  cache = f"results/{tag}/{os.path.basename(path)}.pkl"
  done = pickle.load(open(cache, "rb")) if os.path.exists(cache) else {}
  todo = [c for c in cands if not all(f"{c.name} | k={k}" in done for k in KS)]
  if todo:
    data = sl.load_dumps(path)
    rots = sl.rotations_pairs(list(data["plain"])) if kind == "pairs" else sl.rotations_half(list(data["plain"]))
    for c in todo:
      t = time.time()
      res = sl.evaluate_multi(c, data, rots, list(KS))
      for k in KS:
        done[f"{c.name} | k={k}"] = res[k]
      pickle.dump(done, open(cache, "wb"))
      print(f"{os.path.basename(path)}: {c.name} {time.time() - t:.0f}s", flush=True)
    sl.clear_cache()
  return done


def run(cands, tag):
  os.makedirs(f"results/{tag}", exist_ok=True)
  results = {}
  for scene, models in scenes().items():
    per_model = [run_model(p, kind, cands, tag) for p, kind in models]
    names = [f"{c.name} | k={k}" for c in cands for k in KS]
    results[scene] = {n: sl.summarise([r for m in per_model for r in m[n]]) for n in names}
    results[scene]["_models"] = [p for p, _ in models]
  return results


COLUMNS = [
  ("fa1", "FA@1%"), ("fa1_max", "worst"), ("fa2", "FA@2%"), ("fa2_max", "worst"),
  ("auc_speed", "AUC speed"), ("auc_obj", "AUC obj"), ("auc_real", "AUC real"), ("xauc", "x-video AUC"),
  ("ev1_speed", "ev@1% speed"), ("ev1_obj", "ev@1% obj"), ("ev1_real", "ev@1% real"), ("ev2_obj", "ev@2% obj"), ("ev2_real", "ev@2% real"),
  ("pixauc_speed", "pixAUC speed"), ("pixauc_obj", "pixAUC obj"), ("pixauc_real", "pixAUC real"),
]


def table(res, names=None):
  lines = []
  for scene, rows in res.items():
    lines.append(f"\n#### {scene} ({', '.join(rows['_models'])})\n")
    rows = {n: r for n, r in rows.items() if n != "_models" and (names is None or n in names)}
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    lines.append("| candidate | " + " | ".join(h for _, h in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for name, r in rows.items():
      lines.append(f"| {name} | " + " | ".join(f"{r.get(c, float('nan')):.3f}" for c, _ in cols) + " |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--tag", required=True)
  args = p.parse_args()
  res = run(candidates.SETS["all"](), args.tag)
  with open(f"results/{args.tag}.json", "w") as f:
    json.dump(res, f, indent=1)
  md = table(res)
  with open(f"results/{args.tag}.md", "w") as f:
    f.write(md + "\n")
  print(md)


if __name__ == "__main__":
  main()
