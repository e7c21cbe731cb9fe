// Shared definitions of Woolly's CUDA kernels: fixed-width types, half and bfloat16
// conversions, warp reductions, and the per-token metadata the attention kernels read.
//
// Everything here compiles both with NVRTC (the device build, `make kernels`) and as host C++
// under kernels/host/emulate.h (the CPU-side check of the kernels, `make test`), so the
// conversions are written out rather than taken from cuda_fp16.h.
#pragma once

#ifdef __CUDACC_RTC__
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef unsigned long long u64;
#define W_INLINE __device__ __forceinline__
#else
#include <cstdint>
typedef uint8_t u8;
typedef int8_t i8;
typedef uint16_t u16;
typedef int32_t i32;
typedef uint32_t u32;
typedef uint64_t u64;
#ifndef W_INLINE
#define W_INLINE inline
#endif
#endif

#define WARP 32
#define FULL_MASK 0xffffffffu
#define NEG_INF bits_to_f32(0xff800000u)

// One token's place in its sequence's device cache (TokMeta in backend/cuda/ops.rs, 32 bytes):
// its position, the cache's capacity in positions, and the sequence's key and value storage
// ([layer][position][kv width], half precision).
struct TokMeta {
    i32 pos;
    i32 ctx;
    i32 pad[2];
    u64 k;
    u64 v;
};

W_INLINE float bits_to_f32(u32 b) {
    union { u32 u; float f; } c;
    c.u = b;
    return c.f;
}

W_INLINE u32 f32_to_bits(float f) {
    union { u32 u; float f; } c;
    c.f = f;
    return c.u;
}

// IEEE half to float, exactly (subnormals, infinities and NaN included).
W_INLINE float h2f(u16 h) {
    u32 sign = (u32)(h & 0x8000u) << 16;
    u32 exp = (h >> 10) & 0x1fu;
    u32 man = h & 0x3ffu;
    if (exp == 0x1fu) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        // Subnormal: man * 2^-24, exact in f32.
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

// Float to IEEE half, rounding to nearest even (as the CPU's `half` crate does).
W_INLINE u16 f2h(float f) {
    u32 x = f32_to_bits(f);
    u32 sign = (x >> 16) & 0x8000u;
    u32 exp = (x >> 23) & 0xffu;
    u32 man = x & 0x7fffffu;
    if (exp == 0xffu) return (u16)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (u16)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (u16)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        u32 half_man = man >> shift;
        u32 rem = man & ((1u << shift) - 1u);
        u32 mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half_man & 1u))) half_man++;
        return (u16)(sign | half_man);
    }
    u32 h = sign | ((u32)e << 10) | (man >> 13);
    u32 rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (u16)h;
}

// bfloat16 to float (the upper half of an f32).
W_INLINE float bf2f(u16 b) { return bits_to_f32((u32)b << 16); }

W_INLINE u16 load_u16(const u8* p) { return (u16)(p[0] | (p[1] << 8)); }

W_INLINE u32 load_u32(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

W_INLINE float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

W_INLINE float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// it. `scratch` holds 32 floats of shared memory.
W_INLINE float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    int warps = blockDim.x / WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

W_INLINE float block_max(float v, float* scratch) {
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    int warps = blockDim.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : NEG_INF;
    return warp_max(v);
}
