// The CUDA built-ins Woolly's kernels use, on the host: each block's threads run as real
// threads (blocks one after another), __syncthreads is a barrier of the block, warp shuffles
// exchange through a barrier of the warp, and __shared__ variables are statics (one block at
// a time uses them). It runs the kernels' own source so that `make test` checks their index
// arithmetic, reductions and bounds against the CPU's scalar twins on a machine without a GPU;
// it says nothing about speed, and `make gpu-check` runs the same checks on a real device.
#pragma once
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

struct uint3 {
    unsigned x, y, z;
};
typedef uint3 dim3;

namespace emu {
struct Warp {
    explicit Warp(std::ptrdiff_t n) : bar(n) {}
    std::barrier<> bar;
    float vals[32];
};
struct Block {
    explicit Block(std::ptrdiff_t n) : bar(n) {}
    std::barrier<> bar;
    std::vector<std::unique_ptr<Warp>> warps;
};
inline thread_local Block* block = nullptr;
inline thread_local Warp* warp = nullptr;
}  // namespace emu

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline uint3 blockDim;
inline uint3 gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
#define W_INLINE inline

inline void __syncthreads() { emu::block->bar.arrive_and_wait(); }

inline unsigned emu_lane() {
    unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    return linear % 32;
}

inline float __shfl_xor_sync(unsigned, float v, int offset) {
    emu::Warp& w = *emu::warp;
    unsigned lane = emu_lane();
    w.vals[lane] = v;
    w.bar.arrive_and_wait();
    float r = w.vals[lane ^ (unsigned)offset];
    w.bar.arrive_and_wait();
    return r;
}
