// The CUDA built-ins Woolly's kernels use, on the host: a block's threads run as fibers
// (ucontext) on the calling thread, blocks one after another; __syncthreads waits for every
// thread of the block, a warp shuffle for every thread of the warp (a thread that has returned
// takes no part, as on the GPU), and __shared__ variables are statics (one block at a time uses
// them). It runs the kernels' own source so that `make test` checks their index arithmetic,
// reductions and bounds against the CPU's scalar twins on a machine without a GPU; it says
// nothing about speed, and `make gpu-check` runs the same checks on a real device.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

struct uint3 {
    unsigned x, y, z;
};
typedef uint3 dim3;

inline uint3 threadIdx;
inline uint3 blockIdx;
inline uint3 blockDim;
inline uint3 gridDim;

namespace emu {
enum State { READY, AT_BLOCK, AT_WARP, DONE };
struct Fiber {
    ucontext_t ctx;
    State state = READY;
    uint3 idx;
    unsigned warp_calls = 0;  // shuffles so far (which of the two exchange buffers is used)
};
struct Warp {
    float vals[2][32];
};
inline std::vector<Fiber>* fibers = nullptr;
inline std::vector<Warp>* warps = nullptr;
inline unsigned current = 0;
inline ucontext_t scheduler;

inline void yield(State s) {
    Fiber& f = (*fibers)[current];
    f.state = s;
    swapcontext(&f.ctx, &scheduler);
}
}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
#define W_INLINE inline

inline void __syncthreads() { emu::yield(emu::AT_BLOCK); }

inline float __shfl_xor_sync(unsigned, float v, int offset) {
    emu::Fiber& f = (*emu::fibers)[emu::current];
    unsigned lane = emu::current % 32;
    // Two buffers in turn: a thread past this exchange writes the next one's value into the
    // other buffer, while the slower ones still read this one.
    float(&vals)[32] = (*emu::warps)[emu::current / 32].vals[f.warp_calls++ & 1];
    vals[lane] = v;
    emu::yield(emu::AT_WARP);
    return vals[lane ^ (unsigned)offset];
}
