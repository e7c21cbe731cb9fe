// Woolly's CUDA kernels: the one translation unit `make kernels` compiles to woolly.ptx with
// NVRTC (compute_75, so the driver can JIT it for any GPU from Turing on). The entry points and
// their parameters are listed in kernels/README.md and launched by
// woolly-core/src/backend/cuda/ops.rs.
#include "common.cuh"
#include "quant.cuh"
#include "matmul.cuh"
#include "ops.cuh"
#include "attention.cuh"

WEIGHT_KERNELS(f32)
WEIGHT_KERNELS(f16)
WEIGHT_KERNELS(bf16)
WEIGHT_KERNELS(q4_0)
WEIGHT_KERNELS(q4_1)
WEIGHT_KERNELS(q5_0)
WEIGHT_KERNELS(q5_1)
WEIGHT_KERNELS(q8_0)
WEIGHT_KERNELS(q2_k)
WEIGHT_KERNELS(q3_k)
WEIGHT_KERNELS(q4_k)
WEIGHT_KERNELS(q5_k)
WEIGHT_KERNELS(q6_k)
