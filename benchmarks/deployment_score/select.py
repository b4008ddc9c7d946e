"""Applies the selection rule written at 18:50 (NOTES.md) to results_final.json."""
import json, math
r = json.load(open("results_final.json"))
scenes = list(r)
names = [n for n in r[scenes[0]] if n != "_models"]
def fam_auc(v):
  return sum(v[k] for k in ("auc_speed", "auc_obj", "auc_real") if k in v) / sum(k in v for k in ("auc_speed", "auc_obj", "auc_real"))
def ev1(v):
  ks = [k for k in ("ev1_speed", "ev1_obj", "ev1_real") if k in v]; return sum(v[k] for k in ks) / len(ks)
rows = []
for n in names:
  vs = [r[s][n] for s in scenes]
  rows.append(dict(name=n, eligible=all(v["fa1"] <= 0.015 and v["fa2"] <= 0.03 for v in vs),
    ratio=max(v["fa1"] / 0.01 for v in vs), worst_auc=min(fam_auc(v) for v in vs),
    per_scene=[round(fam_auc(v), 3) for v in vs], fa1=[round(v["fa1"], 3) for v in vs], fa2=[round(v["fa2"], 3) for v in vs],
    ev1=min(ev1(v) for v in vs), pix=min(v.get("pixauc_obj", float("nan")) for v in vs)))
elig = [x for x in rows if x["eligible"]]
print("strictly eligible:", len(elig))
if not elig:
  best = min(x["ratio"] for x in rows); elig = [x for x in rows if x["ratio"] <= best + 0.5]
  print(f"none strictly eligible; best worst-scene FA ratio {best:.2f}; within 0.5: {len(elig)}")
elig.sort(key=lambda x: -x["worst_auc"])
for x in elig:
  print(f"{x['worst_auc']:.3f} {x['per_scene']} fa1 {x['fa1']} fa2 {x['fa2']} ev1 {x['ev1']:.3f} pix {x['pix']:.3f} ratio {x['ratio']:.2f} | {x['name']}")
