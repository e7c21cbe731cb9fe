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
