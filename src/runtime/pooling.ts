/**
 * PyLate's hierarchical token pooling for document embeddings: the first row is kept; the other
 * rows are clustered with Ward linkage on the cosine distance (1 − dot), cut into
 * max(n // poolFactor, 1) flat clusters the way scipy's fcluster(criterion="maxclust") does, and
 * each cluster is replaced by its mean, in cluster-label order. The linkage follows scipy's
 * nearest-neighbour-chain algorithm and labelling so merges, ties and labels come out identical.
 */

/** Index of the pair (i, j), i ≠ j, in a condensed distance vector of n points. */
function condensed(n: number, i: number, j: number): number {
  if (i > j) [i, j] = [j, i];
  return n * i - (i * (i + 1)) / 2 + (j - i - 1);
}

/** Lance–Williams update for Ward's method (on distances, not squared distances). */
function ward(dxi: number, dyi: number, dxy: number, nx: number, ny: number, ni: number): number {
  const t = 1 / (nx + ny + ni);
  return Math.sqrt((ni + nx) * t * dxi * dxi + (ni + ny) * t * dyi * dyi - ni * t * dxy * dxy);
}

/** A linkage matrix row: children (node ids, leaves < n), merge distance. */
export interface Merge {
  left: number;
  right: number;
  distance: number;
}

/** scipy.cluster.hierarchy.linkage(condensed, method="ward"). */
export function wardLinkage(distances: Float64Array, n: number): Merge[] {
  const D = Float64Array.from(distances);
  const size = new Int32Array(n).fill(1);
  const chain: number[] = [];
  const merges: Merge[] = [];
  for (let k = 0; k < n - 1; k++) {
    if (chain.length === 0) chain.push(size.findIndex((s) => s > 0));
    let x = 0;
    let y = 0;
    let best = 0;
    // Follow nearest neighbours until two clusters are each other's nearest.
    for (;;) {
      x = chain[chain.length - 1]!;
      if (chain.length > 1) {
        y = chain[chain.length - 2]!;
        best = D[condensed(n, x, y)]!;
      } else {
        best = Infinity;
      }
      for (let i = 0; i < n; i++) {
        if (size[i] === 0 || i === x) continue;
        const d = D[condensed(n, x, i)]!;
        if (d < best) {
          best = d;
          y = i;
        }
      }
      if (chain.length > 1 && y === chain[chain.length - 2]) break;
      chain.push(y);
    }
    chain.length -= 2;
    if (x > y) [x, y] = [y, x];
    const nx = size[x]!;
    const ny = size[y]!;
    merges.push({ left: x, right: y, distance: best });
    size[x] = 0;
    size[y] = nx + ny;
    for (let i = 0; i < n; i++) {
      const ni = size[i]!;
      if (ni === 0 || i === y) continue;
      D[condensed(n, i, y)] = ward(D[condensed(n, i, x)]!, D[condensed(n, i, y)]!, best, nx, ny, ni);
    }
  }
  // Stable sort by distance, then relabel clusters with a union-find (scipy's `label`).
  const order = merges.map((m, i) => ({ m, i })).sort((a, b) => a.m.distance - b.m.distance || a.i - b.i).map((e) => e.m);
  const parent = new Int32Array(2 * n - 1).map((_, i) => i);
  const find = (v: number) => {
    let r = v;
    while (parent[r] !== r) r = parent[r]!;
    while (parent[v] !== r) [v, parent[v]] = [parent[v]!, r];
    return r;
  };
  return order.map((m, i) => {
    const a = find(m.left);
    const b = find(m.right);
    parent[a] = parent[b] = n + i;
    return { left: Math.min(a, b), right: Math.max(a, b), distance: m.distance };
  });
}

/** Flat cluster labels (1-based) like scipy's fcluster(Z, t=maxClusters, criterion="maxclust"). */
export function maxclust(Z: Merge[], n: number, maxClusters: number): Int32Array {
  // Largest merge distance inside each subtree (the monotonic criterion).
  const mc = new Float64Array(n - 1);
  Z.forEach((m, i) => {
    let d = m.distance;
    if (m.left >= n) d = Math.max(d, mc[m.left - n]!);
    if (m.right >= n) d = Math.max(d, mc[m.right - n]!);
    mc[i] = d;
  });
  const root = 2 * n - 2;
  /** Number of flat clusters when subtrees with mc <= threshold are kept whole. */
  const countClusters = (threshold: number): number => {
    let count = 0;
    const stack = [root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node < n || mc[node - n]! <= threshold) {
        count++;
        continue;
      }
      stack.push(Z[node - n]!.left, Z[node - n]!.right);
    }
    return count;
  };
  // Binary search over the criterion values, as scipy does (lower: too many clusters).
  let lower = 0;
  let upper = n - 1;
  while (upper - lower > 1) {
    const i = (lower + upper) >> 1;
    if (countClusters(mc[i]!) > maxClusters) lower = i;
    else upper = i;
  }
  const threshold = upper < n - 1 ? mc[upper]! : mc[n - 2]!;
  // Label like scipy's cluster_monocrit: depth-first from the root; a node's subtree children
  // are explored before its leaf children are labelled; a cluster's number is taken when its
  // top node is reached, a singleton's when the leaf is labelled.
  const labels = new Int32Array(n);
  let current = 0;
  let inCluster = false;
  const visit = (node: number): void => {
    const leads = !inCluster && mc[node - n]! <= threshold;
    if (leads) {
      inCluster = true;
      current++;
    }
    const { left, right } = Z[node - n]!;
    if (left >= n) visit(left);
    if (right >= n) visit(right);
    if (left < n) labels[left] = inCluster ? current : ++current;
    if (right < n) labels[right] = inCluster ? current : ++current;
    if (leads) inCluster = false;
  };
  visit(root);
  return labels;
}

/**
 * Pools one document's rows ([rows, dim], L2-normalised). Returns the input unchanged when
 * pooling would not reduce the row count.
 */
export function poolDocument(data: Float32Array, rows: number, dim: number, poolFactor: number): { data: Float32Array; rows: number } {
  const n = rows - 1;
  const clusters = Math.max(Math.floor(n / poolFactor), 1);
  if (poolFactor <= 1 || n < 2 || clusters >= n) return { data, rows };
  // Cosine distances in float32, as PyLate computes them (torch.mm, then 1 - x).
  const dist = new Float64Array((n * (n - 1)) / 2);
  const f = new Float32Array(1);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let dot = 0;
      const a = (i + 1) * dim;
      const b = (j + 1) * dim;
      for (let c = 0; c < dim; c++) dot += data[a + c]! * data[b + c]!;
      f[0] = dot;
      f[0] = 1 - f[0]!;
      dist[condensed(n, i, j)] = f[0]!;
    }
  }
  const labels = maxclust(wardLinkage(dist, n), n, clusters);
  const k = Math.max(...labels);
  const out = new Float32Array((k + 1) * dim);
  out.set(data.subarray(0, dim));
  const counts = new Int32Array(k + 1);
  const sums = new Float64Array((k + 1) * dim);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    counts[l]!++;
    for (let c = 0; c < dim; c++) sums[l * dim + c]! += data[(i + 1) * dim + c]!;
  }
  for (let l = 1; l <= k; l++) for (let c = 0; c < dim; c++) out[l * dim + c] = sums[l * dim + c]! / counts[l]!;
  return { data: out, rows: k + 1 };
}
