// Woolly's kernels built for the host (kernels/host/emulate.h), as a shared library with one
// entry: woolly_emulate_launch, the CUDA driver's launch (a kernel name, grid and block
// dimensions, and the parameters as an array of pointers to their values). The integration test
// woolly_core::testing::host_kernels_library builds it and backend::cuda::emulator loads it.
#include "emulate.h"

#include <cstdio>
#include <cstring>
#include <tuple>
#include <utility>

#include "../woolly.cu"

namespace {

template <typename... A, std::size_t... I>
void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}

template <typename... A>
struct Launch {
    void (*f)(A...);
    void** args;
};

template <typename... A>
void fiber_main(unsigned lo, unsigned hi) {
    auto* l = reinterpret_cast<Launch<A...>*>(((uintptr_t)hi << 32) | lo);
    call(l->f, l->args, std::index_sequence_for<A...>{});
    (*emu::fibers)[emu::current].state = emu::DONE;
    // Returning resumes uc_link, the scheduler.
}

constexpr std::size_t STACK = 64 * 1024;

// The fibers' stacks, allocated once (untouched pages cost nothing) for the most threads a
// block may have.
char* stacks() {
    static char* s = new char[STACK * 1024];
    return s;
}

template <typename... A>
int run(void (*f)(A...), const unsigned* grid, const unsigned* block, void** args) {
    unsigned threads = block[0] * block[1] * block[2];
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    std::vector<emu::Fiber> fibers(threads);
    std::vector<emu::Warp> warps((threads + 31) / 32);
    char* stack = stacks();
    emu::fibers = &fibers;
    emu::warps = &warps;
    Launch<A...> l{f, args};
    uintptr_t lp = reinterpret_cast<uintptr_t>(&l);
    for (unsigned bz = 0; bz < grid[2]; bz++)
        for (unsigned by = 0; by < grid[1]; by++)
            for (unsigned bx = 0; bx < grid[0]; bx++) {
                blockIdx = {bx, by, bz};
                for (unsigned t = 0; t < threads; t++) {
                    emu::Fiber& fb = fibers[t];
                    fb.state = emu::READY;
                    fb.warp_calls = 0;
                    fb.idx = {t % block[0], (t / block[0]) % block[1], t / (block[0] * block[1])};
                    getcontext(&fb.ctx);
                    fb.ctx.uc_stack.ss_sp = stack + STACK * t;
                    fb.ctx.uc_stack.ss_size = STACK;
                    fb.ctx.uc_link = &emu::scheduler;
                    makecontext(&fb.ctx, (void (*)())fiber_main<A...>, 2, (unsigned)(lp & 0xffffffffu),
                                (unsigned)(lp >> 32));
                }
                for (;;) {
                    bool ran = false;
                    for (unsigned t = 0; t < threads; t++) {
                        if (fibers[t].state != emu::READY) continue;
                        emu::current = t;
                        threadIdx = fibers[t].idx;
                        swapcontext(&emu::scheduler, &fibers[t].ctx);
                        ran = true;
                    }
                    // Release each warp whose live threads all wait at a shuffle, and the block
                    // when its live threads all wait at __syncthreads.
                    bool all_done = true, all_block = true, released = false;
                    for (unsigned w = 0; w < warps.size(); w++) {
                        bool at = true, any = false;
                        for (unsigned t = 32 * w; t < threads && t < 32 * w + 32; t++) {
                            emu::State s = fibers[t].state;
                            if (s == emu::DONE) continue;
                            any = true;
                            all_done = false;
                            if (s != emu::AT_WARP) at = false;
                            if (s != emu::AT_BLOCK) all_block = false;
                        }
                        if (any && at) {
                            for (unsigned t = 32 * w; t < threads && t < 32 * w + 32; t++)
                                if (fibers[t].state == emu::AT_WARP) fibers[t].state = emu::READY;
                            released = true;
                        }
                    }
                    if (all_done) break;
                    if (all_block) {
                        for (auto& fb : fibers)
                            if (fb.state == emu::AT_BLOCK) fb.state = emu::READY;
                        released = true;
                    }
                    if (!ran && !released) return -2;  // a barrier some threads never reach
                }
            }
    return 0;
}

struct Entry {
    const char* name;
    int (*launch)(const unsigned*, const unsigned*, void**);
};

#define ENTRY(k) {#k, [](const unsigned* g, const unsigned* b, void** a) { return run(k, g, b, a); }},
#define TYPE_ENTRIES(T) ENTRY(mmv_##T) ENTRY(mm_##T) ENTRY(dequant_##T) ENTRY(get_rows_##T)

const Entry ENTRIES[] = {
    WEIGHT_TYPE_LIST(TYPE_ENTRIES)
    ENTRY(rms_norm) ENTRY(add) ENTRY(add_bias) ENTRY(geglu) ENTRY(swiglu) ENTRY(rope_store)
    ENTRY(attention) ENTRY(attention_partial) ENTRY(attention_combine) ENTRY(attention_tiled)
    ENTRY(gather_rows) ENTRY(softmax_rows)
};

}  // namespace

// Runs kernel `name` over `grid` blocks of `block` threads with the parameters `args`; 0 on
// success, -1 when there is no such kernel or the block is empty or over 1024 threads, -2 when
// the threads of a block deadlock (a barrier that some never reach).
extern "C" int woolly_emulate_launch(const char* name, const unsigned* grid,
                                     const unsigned* block, void** args) {
    unsigned threads = block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024) return -1;
    for (const Entry& e : ENTRIES) {
        if (std::strcmp(e.name, name) == 0) {
            return e.launch(grid, block, args);
        }
    }
    return -1;
}
