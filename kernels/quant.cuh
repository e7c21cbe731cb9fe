// Dequantization of the weight types, sixteen elements at a time, in registers: `deq16_T(row,
// c, cols, out)` writes elements 16c..16c+16 of a row (`row` points at its first byte; the
// elements past `cols` of a float row are 0). Every quantized type's blocks hold a multiple of
// 16 elements that share one scale, so each call reads one scale.
//
// The float operations and their order are those of woolly-core/src/quant/dequant.rs (GGML's
// dequantize_row_*), the CPU scalar twin these are checked against.
#pragma once
#include "common.cuh"

W_INLINE void deq16_f32(const u8* row, int c, int cols, float* out) {
    const float* r = (const float*)row;
    for (int j = 0; j < 16; j++) {
        int e = 16 * c + j;
        out[j] = e < cols ? r[e] : 0.0f;
    }
}

W_INLINE void deq16_f16(const u8* row, int c, int cols, float* out) {
    const u16* r = (const u16*)row;
    for (int j = 0; j < 16; j++) {
        int e = 16 * c + j;
        out[j] = e < cols ? h2f(r[e]) : 0.0f;
    }
}

W_INLINE void deq16_bf16(const u8* row, int c, int cols, float* out) {
    const u16* r = (const u16*)row;
    for (int j = 0; j < 16; j++) {
        int e = 16 * c + j;
        out[j] = e < cols ? bf2f(r[e]) : 0.0f;
    }
}

// Q4_0: 18 bytes per 32: d (f16), qs[16]; x = (q - 8) d.
W_INLINE void deq16_q4_0(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 1) * 18;
    float d = h2f(load_u16(b));
    const u8* qs = b + 2;
    int hi = c & 1;
    for (int j = 0; j < 16; j++) {
        int q = hi ? qs[j] >> 4 : qs[j] & 0x0f;
        out[j] = (float)(q - 8) * d;
    }
}

// Q4_1: 20 bytes per 32: d, m (f16), qs[16]; x = q d + m.
W_INLINE void deq16_q4_1(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 1) * 20;
    float d = h2f(load_u16(b)), m = h2f(load_u16(b + 2));
    const u8* qs = b + 4;
    int hi = c & 1;
    for (int j = 0; j < 16; j++) {
        int q = hi ? qs[j] >> 4 : qs[j] & 0x0f;
        out[j] = (float)q * d + m;
    }
}

// The fifth bits of Q5_0/Q5_1: element j from bit j of qh.
W_INLINE int q5_value(const u8* qs, u32 qh, int hi, int j) {
    if (hi) return (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
    return (qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
}

// Q5_0: 22 bytes per 32: d, qh (u32), qs[16]; x = (q - 16) d.
W_INLINE void deq16_q5_0(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 1) * 22;
    float d = h2f(load_u16(b));
    u32 qh = load_u32(b + 2);
    const u8* qs = b + 6;
    int hi = c & 1;
    for (int j = 0; j < 16; j++) out[j] = (float)(q5_value(qs, qh, hi, j) - 16) * d;
}

// Q5_1: 24 bytes per 32: d, m, qh, qs[16]; x = q d + m.
W_INLINE void deq16_q5_1(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 1) * 24;
    float d = h2f(load_u16(b)), m = h2f(load_u16(b + 2));
    u32 qh = load_u32(b + 4);
    const u8* qs = b + 8;
    int hi = c & 1;
    for (int j = 0; j < 16; j++) out[j] = (float)q5_value(qs, qh, hi, j) * d + m;
}

// Q8_0: 34 bytes per 32: d, qs[32] (i8); x = q d.
W_INLINE void deq16_q8_0(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 1) * 34;
    float d = h2f(load_u16(b));
    const u8* qs = b + 2 + 16 * (c & 1);
    for (int j = 0; j < 16; j++) out[j] = (float)(i8)qs[j] * d;
}

// Q2_K: 84 bytes per 256: scales[16] (4-bit scale, 4-bit min), qs[64], d, dmin.
// Element i: (qs[32 (i / 128) + i % 32] >> 2 ((i % 128) / 32)) & 3.
W_INLINE void deq16_q2_k(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 4) * 84;
    int s = c & 15;
    float d = h2f(load_u16(b + 80)), dmin = h2f(load_u16(b + 82));
    float dl = d * (float)(b[s] & 0x0f);
    float ml = dmin * (float)(b[s] >> 4);
    const u8* qs = b + 16 + 32 * (s >> 3) + 16 * (s & 1);
    int shift = 2 * ((s & 7) >> 1);
    for (int j = 0; j < 16; j++) out[j] = dl * (float)((qs[j] >> shift) & 3) - ml;
}

// Q3_K: 110 bytes per 256: hmask[32], qs[64], scales[12] (sixteen 6-bit), d.
W_INLINE void deq16_q3_k(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 4) * 110;
    int s = c & 15;
    const u8* sc = b + 96;
    int low = s < 8 ? sc[s] & 0x0f : sc[s - 8] >> 4;
    int high = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    float d = h2f(load_u16(b + 108));
    float dl = d * (float)((low | (high << 4)) - 32);
    const u8* qs = b + 32 + 32 * (s >> 3) + 16 * (s & 1);
    int shift = 2 * ((s & 7) >> 1);
    const u8* hm = b + 16 * (s & 1);
    int bit = 1 << (s >> 1);
    for (int j = 0; j < 16; j++) {
        int q = ((qs[j] >> shift) & 3) - ((hm[j] & bit) ? 0 : 4);
        out[j] = dl * (float)q;
    }
}

// The scale and min of sub-block j (0..8) of a Q4_K/Q5_K block's 12 scale bytes.
W_INLINE void k4_scale_min(int j, const u8* q, int* sc, int* mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K: 144 bytes per 256: d, dmin, scales[12], qs[128]; sub-blocks of 32,
// x = (d sc) q - (dmin m).
W_INLINE void deq16_q4_k(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 4) * 144;
    int s32 = (c & 15) >> 1;
    int sc, mn;
    k4_scale_min(s32, b + 4, &sc, &mn);
    float dl = h2f(load_u16(b)) * (float)sc;
    float ml = h2f(load_u16(b + 2)) * (float)mn;
    const u8* qs = b + 16 + 32 * (s32 >> 1) + 16 * (c & 1);
    int hi = s32 & 1;
    for (int j = 0; j < 16; j++) {
        int q = hi ? qs[j] >> 4 : qs[j] & 0x0f;
        out[j] = dl * (float)q - ml;
    }
}

// Q5_K: 176 bytes per 256: d, dmin, scales[12], qh[32], qs[128]; Q4_K's values plus 16 where
// bit i / 32 of qh[i % 32] is set.
W_INLINE void deq16_q5_k(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 4) * 176;
    int s32 = (c & 15) >> 1;
    int sc, mn;
    k4_scale_min(s32, b + 4, &sc, &mn);
    float dl = h2f(load_u16(b)) * (float)sc;
    float ml = h2f(load_u16(b + 2)) * (float)mn;
    const u8* qs = b + 48 + 32 * (s32 >> 1) + 16 * (c & 1);
    const u8* qh = b + 16 + 16 * (c & 1);
    int bit = 1 << s32;
    int hi = s32 & 1;
    for (int j = 0; j < 16; j++) {
        int q = (hi ? qs[j] >> 4 : qs[j] & 0x0f) + ((qh[j] & bit) ? 16 : 0);
        out[j] = dl * (float)q - ml;
    }
}

// Q6_K: 210 bytes per 256: ql[128], qh[64], scales[16] (i8), d; sub-blocks of 16,
// x = (d sc) q with q in -32..32.
W_INLINE void deq16_q6_k(const u8* row, int c, int, float* out) {
    const u8* b = row + (c >> 4) * 210;
    int s = c & 15;
    float dl = h2f(load_u16(b + 208)) * (float)(i8)b[192 + s];
    int h = s >> 3;          // which 128
    int quarter = (s & 7) >> 1;  // which 32 of it
    int l0 = 16 * (s & 1);
    const u8* lo = b + 64 * h;
    const u8* hi = b + 128 + 32 * h;
    for (int j = 0; j < 16; j++) {
        int l = l0 + j;
        int q;
        switch (quarter) {
            case 0: q = (lo[l] & 0x0f) | ((hi[l] & 3) << 4); break;
            case 1: q = (lo[l + 32] & 0x0f) | (((hi[l] >> 2) & 3) << 4); break;
            case 2: q = (lo[l] >> 4) | (((hi[l] >> 4) & 3) << 4); break;
            default: q = (lo[l + 32] >> 4) | ((hi[l] >> 6) << 4); break;
        }
        out[j] = dl * (float)(q - 32);
    }
}

// Every weight type with kernels, in the order of WEIGHT_TYPES in backend/cuda/mod.rs.
#define WEIGHT_TYPE_LIST(X) \
    X(f32) X(f16) X(bf16) X(q4_0) X(q4_1) X(q5_0) X(q5_1) X(q8_0) X(q2_k) X(q3_k) X(q4_k) \
    X(q5_k) X(q6_k)
