# node-gyp build of the mmgpt_native addon (the native CPU backend, src/engine/backends/cpu.ts).
#
# The kernels (src/kernels.inl) are compiled three times, each into its own static library with
# its own instruction-set flags: AVX-512 (F/DQ/BW/VL + FMA), AVX2 + FMA, and the compiler's
# default target. addon.cc (the N-API glue, default target) picks one at load time with
# __builtin_cpu_supports, so the built addon runs on any x86-64 machine: no -march=native.
# OpenMP (-fopenmp, libgomp) runs the parallel loops; OMP_NUM_THREADS is respected.
# src/sampling.cc (the sampler's per-row arithmetic, bit for bit the TypeScript sampler's) is part
# of the addon itself, compiled with -ffp-contract=off.
# Build: `npm run build:native` (= node-gyp rebuild -C native).
#
# CUDA (native/cuda/, see README.md): where cuda/find-nvcc.js finds a toolkit (nvcc + static
# cudart; MMGPT_CUDA=0 skips it, MMGPT_CUDA=1 demands it), target mmgpt_cuda_kernels compiles the
# .cu files with nvcc (cuda/build-cuda.js: -O3, sm_80 + sm_90 SASS + compute_90 PTX) into a static
# library, and mmgpt_native links it with cudart_static, so the one addon still loads on machines
# without a CUDA driver. Without a toolkit the addon is built exactly as before; its cuda entry
# points (cuda/addon_cuda.cc, always compiled) then report "built without CUDA".
{
  'variables': {
    'cuda_root%': '<!(node cuda/find-nvcc.js root)',
    'cuda_nvcc%': '<!(node cuda/find-nvcc.js nvcc)',
    'cuda_libdir%': '<!(node cuda/find-nvcc.js libdir)',
  },
  'target_defaults': {
    'cflags': ['-O3', '-fopenmp', '-fno-math-errno', '-fPIC', '-Wall', '-Wno-unknown-pragmas', '-Wno-psabi'],
    'cflags_cc': ['-O3', '-fopenmp', '-fno-math-errno', '-fPIC', '-std=gnu++17', '-Wno-psabi',
                  '-fomit-frame-pointer'],
    # node's common.gypi adds -fno-omit-frame-pointer: the GEMM micro-kernels need every register.
    'cflags!': ['-O2', '-Os', '-fno-omit-frame-pointer'],
    'cflags_cc!': ['-O2', '-Os', '-fno-omit-frame-pointer'],
  },
  'targets': [
    {
      'target_name': 'mmgpt_kernels_base',
      'type': 'static_library',
      'sources': ['src/kernels_base.cc'],
    },
    {
      'target_name': 'mmgpt_kernels_avx2',
      'type': 'static_library',
      'sources': ['src/kernels_avx2.cc'],
      'conditions': [
        ['target_arch=="x64"', {'cflags_cc': ['-mavx2', '-mfma']}],
      ],
    },
    {
      'target_name': 'mmgpt_kernels_avx512',
      'type': 'static_library',
      'sources': ['src/kernels_avx512.cc'],
      'conditions': [
        ['target_arch=="x64"', {
          'cflags_cc': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx2', '-mfma',
                        '-mprefer-vector-width=512'],
        }],
      ],
    },
    {
      # The bfloat16 matmul on AMX tiles (MMGPT_MATMUL=bf16), called only after
      # mmgpt_amx_available says the processor has them and the kernel lets this process use them.
      'target_name': 'mmgpt_gemm_amx',
      'type': 'static_library',
      'sources': ['src/gemm_amx.cc'],
      'conditions': [
        ['target_arch=="x64"', {
          'cflags_cc': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx512bf16',
                        '-mamx-tile', '-mamx-bf16'],
        }],
      ],
    },
    {
      'target_name': 'mmgpt_native',
      # sampling.cc must give the TypeScript sampler's float64 bits: no fused multiply-adds.
      'sources': ['src/addon.cc', 'src/sampling.cc', 'cuda/addon_cuda.cc'],
      'cflags_cc': ['-ffp-contract=off'],
      'dependencies': [
        'mmgpt_kernels_base',
        'mmgpt_kernels_avx2',
        'mmgpt_kernels_avx512',
        'mmgpt_gemm_amx',
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': ['NAPI_VERSION=8'],
      'ldflags': ['-fopenmp'],
      'libraries': ['-fopenmp'],
      'conditions': [
        ['cuda_root!=""', {
          'dependencies': ['mmgpt_cuda_kernels'],
          'defines': ['MMGPT_WITH_CUDA=1'],
          'libraries': [
            '<(SHARED_INTERMEDIATE_DIR)/mmgpt_cuda/libmmgpt_cuda.a',
            '-L<(cuda_libdir)',
            '-lcudart_static',
            '-ldl',
            '-lrt',
            '-lpthread',
          ],
        }],
      ],
    },
  ],
  'conditions': [
    ['cuda_root!=""', {
      'targets': [
        {
          'target_name': 'mmgpt_cuda_kernels',
          'type': 'none',
          'actions': [
            {
              'action_name': 'nvcc',
              'inputs': [
                'cuda/build-cuda.js',
                'cuda/stub.cc',
                'cuda/common.cuh',
                'cuda/cuda_api.h',
                'src/kernels.h',
                'cuda/runtime.cu',
                'cuda/elementwise.cu',
                'cuda/matmul.cu',
                'cuda/nn.cu',
                'cuda/attention.cu',
              ],
              'outputs': ['<(SHARED_INTERMEDIATE_DIR)/mmgpt_cuda/libmmgpt_cuda.a'],
              'action': [
                'node', 'cuda/build-cuda.js', '--nvcc', '<(cuda_nvcc)', '--out', '<@(_outputs)',
                'cuda/runtime.cu', 'cuda/elementwise.cu', 'cuda/matmul.cu', 'cuda/nn.cu',
                'cuda/attention.cu',
              ],
              'message': 'nvcc: CUDA kernels',
            },
          ],
        },
      ],
    }],
  ],
}
