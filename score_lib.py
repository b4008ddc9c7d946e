

class PlaceClip(Candidate):
  """Levelled block error with a ONE-SIDED per-place correction: places whose normal error
  is above the typical place's are scaled down, quiet places are never boosted.

    r_b = log(e_b + eps) - alpha * log(frame mean error + eps)
    P_b = log(mean over normal frames of exp(r_b))      (per-place normal level, smoothed)
    v_b = r_b - beta * max(P_b - P_ref, 0),  P_ref = q-quantile of P_b over places
  score = max_b v_b. ``source``: 'train' (the frames the model trained on) or 'cal'."""

  def __init__(self, cell=8, stride=4, alpha=0.5, q=0.5, beta=1.0, sigma=0.0, source="cal", eps=1e-6, err="err_f", name=None):
    self.cell, self.stride, self.alpha, self.q, self.beta, self.sigma, self.source, self.eps, self.err = cell, stride, alpha, q, beta, sigma, source, eps, err
    self.needs_train = source == "train"
    self.region_cell = stride or cell
    self.loc_cell, self.loc_stride = cell, stride or cell
    self.name = name or f"placeclip {err} cell{cell}/{stride} a={alpha} q={q} b={beta} sig={sigma} src={source}"

  def levelled(self, seq):
    b = block_mean(seq[self.err].astype(np.float64), self.cell, self.stride)
    lev = seq[self.err].reshape(len(b), -1).mean(1)
    return np.log(b + self.eps) - self.alpha * np.log(lev + self.eps)[:, None, None]

  def fit(self, cal, train=None):
    src = train if (self.source == "train" and train) else cal
    r = np.concatenate([self.levelled(s) for s in src])
    P = np.log(np.exp(r).mean(0))
    if self.sigma:
      P = ndimage.gaussian_filter(P, self.sigma, mode="nearest")
    ref = np.quantile(P, self.q)
    return {"corr": self.beta * np.maximum(P - ref, 0.0)}

  def raw(self, seq, p):
    v = self.levelled(seq) - p["corr"]
    return v.reshape(len(v), -1).max(1), v
