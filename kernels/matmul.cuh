// Products with weight matrices as the file stores them, dequantized in registers (never a
// full-precision copy in device memory), for every weight type: `y[t][r] = W[r] . x[t]` for
// `n` tokens of `cols` values, `rows` outputs each.
//
//   mmv_T      up to 8 tokens (decoding): block (32, 4), grid (ceil(rows / 4), ceil(n / 8));
//              one warp per row, each lane 16 columns at a time, 8 tokens per weight read.
//   mm_T       prompts: block 256, grid (ceil(rows / 64), ceil(n / 64)); 64 x 64 tiles over
//              K steps of 32, staged in shared memory, 4 x 4 outputs per thread.
//   dequant_T  rows to f32 (the check's reference path): block 256, grid rows.
//   get_rows_T embedding rows `ids`, times `scale`: block 256, grid n.
#pragma once
#include "quant.cuh"

#define MMV_TOKENS 8
#define MM_TILE 64
#define MM_K 32

template <void (*DEQ)(const u8*, int, int, float*)>
W_INLINE void mmv(const u8* w, const float* x, float* y, int rows, int cols, int row_bytes,
                  int n) {
    int r = blockIdx.x * blockDim.y + threadIdx.y;
    int t0 = blockIdx.y * MMV_TOKENS;
    if (r >= rows) return;
    int nt = n - t0 < MMV_TOKENS ? n - t0 : MMV_TOKENS;
    const u8* row = w + (size_t)r * row_bytes;
    int lane = threadIdx.x;
    int chunks = (cols + 15) / 16;
    float acc[MMV_TOKENS];
    for (int t = 0; t < MMV_TOKENS; t++) acc[t] = 0.0f;
    for (int c = lane; c < chunks; c += WARP) {
        float v[16];
        DEQ(row, c, cols, v);
        int m = cols - 16 * c < 16 ? cols - 16 * c : 16;
        for (int t = 0; t < MMV_TOKENS; t++) {
            if (t < nt) {
                const float* xs = x + (size_t)(t0 + t) * cols + 16 * c;
                float s = 0.0f;
                if (m == 16) {
                    for (int j = 0; j < 16; j++) s += v[j] * xs[j];
                } else {
                    for (int j = 0; j < m; j++) s += v[j] * xs[j];
                }
                acc[t] += s;
            }
        }
    }
    for (int t = 0; t < MMV_TOKENS; t++) {
        if (t < nt) {
            float s = warp_sum(acc[t]);
            if (lane == 0) y[(size_t)(t0 + t) * rows + r] = s;
        }
    }
}

template <void (*DEQ)(const u8*, int, int, float*)>
W_INLINE void mm(const u8* w, const float* x, float* y, int rows, int cols, int row_bytes,
                 int n) {
    __shared__ float ws[MM_TILE][MM_K + 1];
    __shared__ float xs[MM_TILE][MM_K + 1];
    int r0 = blockIdx.x * MM_TILE, t0 = blockIdx.y * MM_TILE;
    int tid = threadIdx.x;
    int tr = tid / 16, tt = tid % 16;
    int chunks = (cols + 15) / 16;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < cols; k0 += MM_K) {
        if (tid < 2 * MM_TILE) {
            int rr = tid >> 1, half = tid & 1;
            int c = k0 / 16 + half;
            float v[16];
            if (r0 + rr < rows && c < chunks) {
                DEQ(w + (size_t)(r0 + rr) * row_bytes, c, cols, v);
            } else {
                for (int j = 0; j < 16; j++) v[j] = 0.0f;
            }
            for (int j = 0; j < 16; j++) ws[rr][16 * half + j] = v[j];
        }
        for (int i = tid; i < MM_TILE * MM_K; i += blockDim.x) {
            int tok = i / MM_K, kk = i % MM_K;
            int t = t0 + tok, k = k0 + kk;
            xs[tok][kk] = (t < n && k < cols) ? x[(size_t)t * cols + k] : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < MM_K; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = ws[tr * 4 + i][kk];
            for (int j = 0; j < 4; j++) b[j] = xs[tt * 4 + j][kk];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        int r = r0 + tr * 4 + i;
        if (r >= rows) continue;
        for (int j = 0; j < 4; j++) {
            int t = t0 + tt * 4 + j;
            if (t < n) y[(size_t)t * rows + r] = acc[i][j];
        }
    }
}

template <void (*DEQ)(const u8*, int, int, float*)>
W_INLINE void dequant_rows(const u8* row, float* out, int cols, float scale, bool scaled) {
    int chunks = (cols + 15) / 16;
    for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
        float v[16];
        DEQ(row, c, cols, v);
        int m = cols - 16 * c < 16 ? cols - 16 * c : 16;
        for (int j = 0; j < m; j++) out[16 * c + j] = scaled ? v[j] * scale : v[j];
    }
}

#define WEIGHT_KERNELS(T)                                                                     \
    extern "C" __global__ void mmv_##T(const u8* w, const float* x, float* y, int rows,      \
                                       int cols, int row_bytes, int n) {                      \
        mmv<deq16_##T>(w, x, y, rows, cols, row_bytes, n);                                    \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(256)                                         \
        mm_##T(const u8* w, const float* x, float* y, int rows, int cols, int row_bytes,      \
               int n) {                                                                       \
        mm<deq16_##T>(w, x, y, rows, cols, row_bytes, n);                                     \
    }                                                                                         \
    extern "C" __global__ void dequant_##T(const u8* w, float* out, int rows, int cols,      \
                                           int row_bytes) {                                   \
        int r = blockIdx.x;                                                                   \
        if (r < rows)                                                                         \
            dequant_rows<deq16_##T>(w + (size_t)r * row_bytes, out + (size_t)r * cols, cols, \
                                    1.0f, false);                                             \
    }                                                                                         \
    extern "C" __global__ void get_rows_##T(const u8* w, const i32* ids, float* out, int cols, \
                                            int row_bytes, int n, float scale) {              \
        int b = blockIdx.x;                                                                   \
        if (b < n)                                                                            \
            dequant_rows<deq16_##T>(w + (size_t)ids[b] * row_bytes, out + (size_t)b * cols,  \
                                    cols, scale, true);                                       \
    }
