// Woolly's CUDA kernels: the one translation unit `make kernels` compiles to woolly.ptx with
// NVRTC (compute_75, so the driver can JIT it for any GPU from Turing on). The entry points and
// their parameters are listed in kernels/README.md and launched by
// woolly-core/src/backend/cuda/ops.rs.
#include "common.cuh"
#include "quant.cuh"
#include "matmul.cuh"
#include "ops.cuh"
#include "attention.cuh"

WEIGHT_TYPE_LIST(WEIGHT_KERNELS)
