// Row-wise and element-wise kernels: RMSNorm, residual adds and biases, the gated
// activations, row gathers and softmax. Their numerics follow woolly-core/src/kernels/cpu/ops.rs
// (the CPU scalar twins): GEGLU rounds through f16 as the CPU's GELU table does.
#pragma once
#include "common.cuh"

// y = x / sqrt(mean(x^2) + eps) * w, one row per block (block 256, grid rows); x may be y.
extern "C" __global__ void rms_norm(const float* x, float* y, const float* w, int width,
                                    float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (size_t)blockIdx.x * width;
    float* yr = y + (size_t)blockIdx.x * width;
    float s = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) s += xr[j] * xr[j];
    s = block_sum(s, scratch);
    float scale = 1.0f / sqrtf(s / (float)width + eps);
    for (int j = threadIdx.x; j < width; j += blockDim.x) yr[j] = (xr[j] * scale) * w[j];
}

// to += from, over `total` values (block 256).
extern "C" __global__ void add(float* to, const float* from, int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) to[i] += from[i];
}

// x[i] += b[i % width] (a bias on every row).
extern "C" __global__ void add_bias(float* x, const float* b, int width, int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) x[i] += b[i % width];
}

W_INLINE float gelu_f32(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978846f * x * (1.0f + 0.044715f * x * x)));
}

// gate = gelu(gate) * up: GELU (tanh) of the f16-rounded input, rounded to f16, 0 below -10
// and the identity above 10, as the CPU's table gives it.
extern "C" __global__ void geglu(float* gate, const float* up, int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    float x = gate[i];
    float g;
    if (x <= -10.0f) g = 0.0f;
    else if (x >= 10.0f) g = x;
    else g = h2f(f2h(gelu_f32(h2f(f2h(x)))));
    gate[i] = g * up[i];
}

// gate = silu(gate) * up.
extern "C" __global__ void swiglu(float* gate, const float* up, int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    float x = gate[i];
    gate[i] = x / (1.0f + expf(-x)) * up[i];
}

// y[b] = x[rows[b]], rows of `width` (block 256, grid m): the last token of each sequence that
// wants logits.
extern "C" __global__ void gather_rows(const float* x, float* y, const i32* rows, int width,
                                       int m) {
    int b = blockIdx.x;
    if (b >= m) return;
    const float* src = x + (size_t)rows[b] * width;
    float* dst = y + (size_t)b * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) dst[j] = src[j];
}

// Softmax of each row of `width` in place (block 256, grid rows); a row of -inf becomes 0.
extern "C" __global__ void softmax_rows(float* x, int width, int rows) {
    __shared__ float scratch[32];
    if ((int)blockIdx.x >= rows) return;
    float* r = x + (size_t)blockIdx.x * width;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < width; j += blockDim.x) m = fmaxf(m, r[j]);
    m = block_max(m, scratch);
    if (m == NEG_INF) {
        for (int j = threadIdx.x; j < width; j += blockDim.x) r[j] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float e = expf(r[j] - m);
        r[j] = e;
        s += e;
    }
    s = block_sum(s, scratch);
    float inv = 1.0f / s;
    for (int j = threadIdx.x; j < width; j += blockDim.x) r[j] *= inv;
}
