// Woolly's kernels built for the host (kernels/host/emulate.h), as a shared library with one
// entry: woolly_emulate_launch, the CUDA driver's launch (a kernel name, grid and block
// dimensions, and the parameters as an array of pointers to their values). The integration test
// woolly-core/tests/kernels_host.rs builds and loads it, and runs backend::cuda::check on it.
#include "emulate.h"

#include <cstdio>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>

#include "../woolly.cu"

namespace {

template <typename... A, std::size_t... I>
void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}

template <typename... A>
void run(void (*f)(A...), const unsigned* grid, const unsigned* block, void** args) {
    unsigned threads = block[0] * block[1] * block[2];
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2]; bz++)
        for (unsigned by = 0; by < grid[1]; by++)
            for (unsigned bx = 0; bx < grid[0]; bx++) {
                emu::Block b((std::ptrdiff_t)threads);
                for (unsigned w = 0; w < (threads + 31) / 32; w++) {
                    unsigned in_warp = threads - 32 * w < 32 ? threads - 32 * w : 32;
                    b.warps.push_back(std::make_unique<emu::Warp>((std::ptrdiff_t)in_warp));
                }
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; t++) {
                    pool.emplace_back([&, t] {
                        emu::block = &b;
                        emu::warp = b.warps[t / 32].get();
                        threadIdx = {t % block[0], (t / block[0]) % block[1],
                                     t / (block[0] * block[1])};
                        blockIdx = {bx, by, bz};
                        call(f, args, std::index_sequence_for<A...>{});
                        // A thread that has returned no longer takes part in barriers.
                        emu::warp->bar.arrive_and_drop();
                        emu::block->bar.arrive_and_drop();
                    });
                }
                for (auto& th : pool) th.join();
            }
}

struct Entry {
    const char* name;
    void (*launch)(const unsigned*, const unsigned*, void**);
};

#define ENTRY(k) {#k, [](const unsigned* g, const unsigned* b, void** a) { run(k, g, b, a); }},
#define TYPE_ENTRIES(T) ENTRY(mmv_##T) ENTRY(mm_##T) ENTRY(dequant_##T) ENTRY(get_rows_##T)

const Entry ENTRIES[] = {
    WEIGHT_TYPE_LIST(TYPE_ENTRIES)
    ENTRY(rms_norm) ENTRY(add) ENTRY(add_bias) ENTRY(geglu) ENTRY(swiglu) ENTRY(rope_store)
    ENTRY(attention) ENTRY(attention_partial) ENTRY(attention_combine) ENTRY(gather_rows)
    ENTRY(softmax_rows)
};

}  // namespace

// Runs kernel `name` over `grid` blocks of `block` threads with the parameters `args`; 0 on
// success, -1 when there is no such kernel or the block is empty or over 1024 threads.
extern "C" int woolly_emulate_launch(const char* name, const unsigned* grid,
                                     const unsigned* block, void** args) {
    unsigned threads = block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024) return -1;
    for (const Entry& e : ENTRIES) {
        if (std::strcmp(e.name, name) == 0) {
            e.launch(grid, block, args);
            return 0;
        }
    }
    return -1;
}

// How many kernels the library has (the device build's count, for the test to compare).
extern "C" int woolly_emulate_kernels() { return (int)(sizeof(ENTRIES) / sizeof(ENTRIES[0])); }
