// RoPE with the store into the f16 KV cache, and causal (optionally sliding-window)
// attention with grouped heads over that cache.
//
//   rope_store          block 256, grid n: rotates q and k of token t in place (both layouts),
//                       then writes k and v to the cache at the token's position.
//   attention           block 128, grid (n_head, n): one query head of one token over keys
//                       lo..=pos, four warps with an online softmax each, merged at the end.
//   attention_partial   block 128, grid (n_head, n, splits): the same over keys
//   attention_combine   [z chunk, (z + 1) chunk) only (split-K decoding of long contexts),
//                       and the merge of the splits' (max, sum, accumulator), grid (n_head, n).
//   attention_tiled     block 128, grid (n_head, tiles): flash attention of prompts, one query
//                       head of a tile of up to TILE_Q consecutive tokens of one sequence (the
//                       host's tile table: first token, count), keys staged TILE_K at a time
//                       through shared memory (as f32), an online softmax per query row.
//
// Cache layout: [layer][position][kv width] halves, position < TokMeta.ctx. Heads up to 256
// wide (the host refuses wider).
#pragma once
#include "common.cuh"

#define ATT_WARPS 4
#define MAX_HEAD 256
#define HEAD_LANES (MAX_HEAD / WARP)

W_INLINE void rotate(float* x, int i, int half, int neox, float c, float s) {
    int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    float xa = x[a], xb = x[b];
    x[a] = xa * c - xb * s;
    x[b] = xa * s + xb * c;
}

extern "C" __global__ void rope_store(float* q, float* k, const float* v, const TokMeta* meta,
                                      int n, int layer, int n_head, int n_head_kv, int hdk,
                                      int hdv, int rope_dims, int neox, float base,
                                      float freq_scale, const float* freqs) {
    __shared__ float cs[MAX_HEAD / 2], sn[MAX_HEAD / 2];
    int t = blockIdx.x;
    if (t >= n) return;
    TokMeta m = meta[t];
    int half = rope_dims / 2;
    if (threadIdx.x == 0) {
        // The angles as the CPU computes them: theta advanced by repeated multiplication.
        float theta_scale = powf(base, -2.0f / (float)rope_dims);
        float theta = (float)m.pos;
        for (int i = 0; i < half; i++) {
            float ff = freqs ? freqs[i] : 1.0f;
            cs[i] = freq_scale * (theta / ff);
            theta *= theta_scale;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float a = cs[i];
        sn[i] = sinf(a);
        cs[i] = cosf(a);
    }
    __syncthreads();
    int kw = n_head_kv * hdk, vw = n_head_kv * hdv;
    float* qr = q + (size_t)t * n_head * hdk;
    float* kr = k + (size_t)t * kw;
    for (int idx = threadIdx.x; idx < (n_head + n_head_kv) * half; idx += blockDim.x) {
        int h = idx / half, i = idx % half;
        float* x = h < n_head ? qr + h * hdk : kr + (h - n_head) * hdk;
        rotate(x, i, half, neox, cs[i], sn[i]);
    }
    __syncthreads();
    u16* kc = (u16*)m.k + ((size_t)layer * m.ctx + m.pos) * kw;
    u16* vc = (u16*)m.v + ((size_t)layer * m.ctx + m.pos) * vw;
    const float* vr = v + (size_t)t * vw;
    for (int j = threadIdx.x; j < kw; j += blockDim.x) kc[j] = f2h(kr[j]);
    for (int j = threadIdx.x; j < vw; j += blockDim.x) vc[j] = f2h(vr[j]);
}

// One warp's online softmax over keys from + warp, from + warp + ATT_WARPS, ... < to of KV
// head kvh: its running max, sum and value accumulator (lane owns dims lane + 32 i).
W_INLINE void attend_warp(const float* qs, const TokMeta& m, int layer, int kvh, int hdk,
                          int hdv, int kw, int vw, float kq_scale, int from, int to,
                          float* max_out, float* sum_out, float* acc) {
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const u16* kc = (const u16*)m.k + (size_t)layer * m.ctx * kw + kvh * hdk;
    const u16* vc = (const u16*)m.v + (size_t)layer * m.ctx * vw + kvh * hdv;
    float mx = NEG_INF, sum = 0.0f;
    for (int i = 0; i < HEAD_LANES; i++) acc[i] = 0.0f;
    for (int j = from + warp; j < to; j += ATT_WARPS) {
        const u16* kj = kc + (size_t)j * kw;
        float s = 0.0f;
        for (int d = lane; d < hdk; d += WARP) s += qs[d] * h2f(kj[d]);
        s = warp_sum(s) * kq_scale;
        float nm = fmaxf(mx, s);
        float a = expf(mx - nm), b = expf(s - nm);
        sum = sum * a + b;
        const u16* vj = vc + (size_t)j * vw;
        for (int i = 0; i < HEAD_LANES; i++) {
            int d = lane + WARP * i;
            if (d < hdv) acc[i] = acc[i] * a + b * h2f(vj[d]);
        }
        mx = nm;
    }
    *max_out = mx;
    *sum_out = sum;
}

// The block's keys from..to for head h of token t: the four warps' softmaxes merged, into
// the block's max and sum and the unnormalized accumulator `out_acc` (hdv values).
W_INLINE void attend_block(const float* q, const TokMeta& m, int t, int h, int layer,
                           int n_head, int n_head_kv, int hdk, int hdv, float kq_scale,
                           int from, int to, float* out_max, float* out_sum, float* out_acc) {
    __shared__ float qs[MAX_HEAD];
    __shared__ float wmax[ATT_WARPS], wsum[ATT_WARPS];
    __shared__ float wacc[ATT_WARPS][MAX_HEAD];
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    int kvh = h / (n_head / n_head_kv);
    const float* qr = q + ((size_t)t * n_head + h) * hdk;
    for (int d = threadIdx.x; d < hdk; d += blockDim.x) qs[d] = qr[d];
    __syncthreads();
    float mx, sum, acc[HEAD_LANES];
    attend_warp(qs, m, layer, kvh, hdk, hdv, n_head_kv * hdk, n_head_kv * hdv, kq_scale, from,
                to, &mx, &sum, acc);
    if (lane == 0) {
        wmax[warp] = mx;
        wsum[warp] = sum;
    }
    for (int i = 0; i < HEAD_LANES; i++) {
        int d = lane + WARP * i;
        if (d < hdv) wacc[warp][d] = acc[i];
    }
    __syncthreads();
    float M = NEG_INF;
    for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, wmax[w]);
    float S = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        if (wsum[w] > 0.0f) S += wsum[w] * expf(wmax[w] - M);
    for (int d = threadIdx.x; d < hdv; d += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            if (wsum[w] > 0.0f) o += wacc[w][d] * expf(wmax[w] - M);
        out_acc[d] = o;
    }
    *out_max = M;
    *out_sum = S;
}

W_INLINE int first_key(int pos, int window) {
    int lo = window > 0 ? pos + 1 - window : 0;
    return lo > 0 ? lo : 0;
}

extern "C" __global__ void __launch_bounds__(128)
    attention(const float* q, float* out, const TokMeta* meta, int n, int layer, int n_head,
              int n_head_kv, int hdk, int hdv, float kq_scale, int window) {
    __shared__ float acc[MAX_HEAD];
    int h = blockIdx.x, t = blockIdx.y;
    if (t >= n) return;
    TokMeta m = meta[t];
    float mx, sum;
    attend_block(q, m, t, h, layer, n_head, n_head_kv, hdk, hdv, kq_scale,
                 first_key(m.pos, window), m.pos + 1, &mx, &sum, acc);
    float* o = out + ((size_t)t * n_head + h) * hdv;
    float inv = 1.0f / sum;
    for (int d = threadIdx.x; d < hdv; d += blockDim.x) o[d] = acc[d] * inv;
}

// Split z of gridDim.z over keys [z chunk, (z + 1) chunk) ∩ [lo, pos]: part[((t n_head + h)
// splits + z)] = (max, sum, accumulator[hdv]); an empty split has sum 0.
extern "C" __global__ void __launch_bounds__(128)
    attention_partial(const float* q, float* part, const TokMeta* meta, int n, int layer,
                      int n_head, int n_head_kv, int hdk, int hdv, float kq_scale, int window,
                      int chunk) {
    int h = blockIdx.x, t = blockIdx.y, z = blockIdx.z;
    if (t >= n) return;
    TokMeta m = meta[t];
    int lo = first_key(m.pos, window);
    int from = z * chunk > lo ? z * chunk : lo;
    int to = (z + 1) * chunk < m.pos + 1 ? (z + 1) * chunk : m.pos + 1;
    float* p = part + (((size_t)t * n_head + h) * gridDim.z + z) * (hdv + 2);
    if (from >= to) {
        if (threadIdx.x == 0) {
            p[0] = NEG_INF;
            p[1] = 0.0f;
        }
        return;
    }
    float mx, sum;
    attend_block(q, m, t, h, layer, n_head, n_head_kv, hdk, hdv, kq_scale, from, to, &mx, &sum,
                 p + 2);
    if (threadIdx.x == 0) {
        p[0] = mx;
        p[1] = sum;
    }
}

extern "C" __global__ void attention_combine(const float* part, float* out, int n, int n_head,
                                             int hdv, int splits) {
    int h = blockIdx.x, t = blockIdx.y;
    if (t >= n) return;
    const float* p = part + ((size_t)t * n_head + h) * splits * (hdv + 2);
    float M = NEG_INF;
    for (int z = 0; z < splits; z++)
        if (p[z * (hdv + 2) + 1] > 0.0f) M = fmaxf(M, p[z * (hdv + 2)]);
    float S = 0.0f;
    for (int z = 0; z < splits; z++) {
        const float* pz = p + z * (hdv + 2);
        if (pz[1] > 0.0f) S += pz[1] * expf(pz[0] - M);
    }
    float inv = 1.0f / S;
    float* o = out + ((size_t)t * n_head + h) * hdv;
    for (int d = threadIdx.x; d < hdv; d += blockDim.x) {
        float v = 0.0f;
        for (int z = 0; z < splits; z++) {
            const float* pz = p + z * (hdv + 2);
            if (pz[1] > 0.0f) v += pz[2 + d] * expf(pz[0] - M);
        }
        o[d] = v * inv;
    }
}

// Tiled (flash) attention of prompt passes: block (h, z) computes query head h of the tokens
// tiles[2z] .. tiles[2z] + tiles[2z + 1] - 1 (at most TILE_Q, one sequence, so one cache), over
// the union of their key ranges, TILE_K keys at a time. Per key tile:
//   1. the keys into shared memory, transposed ([d][TILE_K + 1], f32);
//   2. scores: thread (j = tid % 16, rows tid / 16 and tid / 16 + 8) for key j of both rows; each
//      row's 16 keys lie in one half-warp, which reduces the row's max and sum by shuffles and
//      keeps its running (max, sum); the weights exp(s - max) go to shared memory with each
//      row's rescale factor;
//   3. the values into the same shared buffer ([j][MAX_HEAD]);
//   4. accumulators: warp w owns rows 4w .. 4w + 3, lane dims lane + 32 c (32 floats a thread),
//      rescaled, then plus the weights times the values.
// Static shared memory: 16.1 KiB of queries, 17 KiB of keys or values, 1.2 KiB more.
#define TILE_Q 16
#define TILE_K 16
#define TILE_ROWS_PER_WARP (TILE_Q / ATT_WARPS)

W_INLINE float half_warp_max(float v) {
    for (int o = TILE_K / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

W_INLINE float half_warp_sum(float v) {
    for (int o = TILE_K / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// One row's online softmax over a key tile: its score `s` of key j (NEG_INF when masked), the
// running max and sum (updated); returns the key's weight, and the accumulator's rescale factor
// in `*alpha`.
W_INLINE float tile_softmax(float s, float* mx, float* sum, float* alpha) {
    float nm = fmaxf(*mx, half_warp_max(s));
    float p = nm == NEG_INF ? 0.0f : expf(s - nm);
    float a = *mx == nm ? 1.0f : expf(*mx - nm);
    *sum = *sum * a + half_warp_sum(p);
    *mx = nm;
    *alpha = a;
    return p;
}

extern "C" __global__ void __launch_bounds__(128)
    attention_tiled(const float* q, float* out, const TokMeta* meta, const int* tiles,
                    int n_tiles, int layer, int n_head, int n_head_kv, int hdk, int hdv,
                    float kq_scale, int window) {
    __shared__ float qs[TILE_Q][MAX_HEAD + 1];
    __shared__ float kv[MAX_HEAD * (TILE_K + 1)];
    __shared__ float ps[TILE_Q][TILE_K];
    __shared__ float alpha[TILE_Q], lsum[TILE_Q];
    __shared__ int rpos[TILE_Q];
    int h = blockIdx.x, z = blockIdx.y;
    if (z >= n_tiles) return;
    int t0 = tiles[2 * z], count = tiles[2 * z + 1];
    int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    TokMeta m = meta[t0];
    int kvh = h / (n_head / n_head_kv);
    int kw = n_head_kv * hdk, vw = n_head_kv * hdv;
    const u16* kc = (const u16*)m.k + (size_t)layer * m.ctx * kw + kvh * hdk;
    const u16* vc = (const u16*)m.v + (size_t)layer * m.ctx * vw + kvh * hdv;
    if (tid < TILE_Q) rpos[tid] = tid < count ? meta[t0 + tid].pos : -1;
    for (int idx = tid; idx < TILE_Q * hdk; idx += blockDim.x) {
        int r = idx / hdk, d = idx % hdk;
        qs[r][d] = r < count ? q[((size_t)(t0 + r) * n_head + h) * hdk + d] : 0.0f;
    }
    __syncthreads();
    // The keys any row of the tile sees.
    int lo = 0x7fffffff, hi = 0;
    for (int r = 0; r < count; r++) {
        int f = first_key(rpos[r], window);
        lo = f < lo ? f : lo;
        hi = rpos[r] + 1 > hi ? rpos[r] + 1 : hi;
    }
    // Scores: key j of rows r0 and r1 (a row with pos -1 is past the tile's tokens: all masked).
    int j = tid % TILE_K, r0 = tid / TILE_K, r1 = r0 + TILE_Q / 2;
    int p0 = rpos[r0], p1 = rpos[r1];
    int lo0 = first_key(p0, window), lo1 = first_key(p1, window);
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;
    float acc[TILE_ROWS_PER_WARP][HEAD_LANES];
    for (int i = 0; i < TILE_ROWS_PER_WARP; i++)
        for (int c = 0; c < HEAD_LANES; c++) acc[i][c] = 0.0f;
    for (int k0 = lo; k0 < hi; k0 += TILE_K) {
        int nk = hi - k0 < TILE_K ? hi - k0 : TILE_K;
        for (int idx = tid; idx < TILE_K * hdk; idx += blockDim.x) {
            int jj = idx / hdk, d = idx % hdk;
            kv[d * (TILE_K + 1) + jj] = jj < nk ? h2f(kc[(size_t)(k0 + jj) * kw + d]) : 0.0f;
        }
        __syncthreads();
        float s0 = 0.0f, s1 = 0.0f;
        for (int d = 0; d < hdk; d++) {
            float kd = kv[d * (TILE_K + 1) + j];
            s0 += qs[r0][d] * kd;
            s1 += qs[r1][d] * kd;
        }
        int key = k0 + j;
        bool in = j < nk;
        s0 = in && key <= p0 && key >= lo0 ? s0 * kq_scale : NEG_INF;
        s1 = in && key <= p1 && key >= lo1 ? s1 * kq_scale : NEG_INF;
        float a0, a1;
        ps[r0][j] = tile_softmax(s0, &m0, &l0, &a0);
        ps[r1][j] = tile_softmax(s1, &m1, &l1, &a1);
        if (j == 0) {
            alpha[r0] = a0;
            alpha[r1] = a1;
        }
        __syncthreads();
        for (int idx = tid; idx < TILE_K * hdv; idx += blockDim.x) {
            int jj = idx / hdv, d = idx % hdv;
            kv[jj * MAX_HEAD + d] = jj < nk ? h2f(vc[(size_t)(k0 + jj) * vw + d]) : 0.0f;
        }
        __syncthreads();
        for (int i = 0; i < TILE_ROWS_PER_WARP; i++) {
            float a = alpha[warp * TILE_ROWS_PER_WARP + i];
            for (int c = 0; c < HEAD_LANES; c++) acc[i][c] *= a;
        }
        for (int jj = 0; jj < nk; jj++) {
            float p[TILE_ROWS_PER_WARP];
            for (int i = 0; i < TILE_ROWS_PER_WARP; i++) p[i] = ps[warp * TILE_ROWS_PER_WARP + i][jj];
            for (int c = 0; c < HEAD_LANES; c++) {
                int d = lane + WARP * c;
                if (d < hdv) {
                    float v = kv[jj * MAX_HEAD + d];
                    for (int i = 0; i < TILE_ROWS_PER_WARP; i++) acc[i][c] += p[i] * v;
                }
            }
        }
        __syncthreads();
    }
    if (j == 0) {
        lsum[r0] = l0;
        lsum[r1] = l1;
    }
    __syncthreads();
    for (int i = 0; i < TILE_ROWS_PER_WARP; i++) {
        int r = warp * TILE_ROWS_PER_WARP + i;
        if (r >= count) continue;
        float inv = 1.0f / lsum[r];
        float* o = out + ((size_t)(t0 + r) * n_head + h) * hdv;
        for (int c = 0; c < HEAD_LANES; c++) {
            int d = lane + WARP * c;
            if (d < hdv) o[d] = acc[i][c] * inv;
        }
    }
}
