# node-gyp build of the mmgpt_native addon (the native CPU backend, src/engine/backends/cpu.ts).
#
# The kernels (src/kernels.inl) are compiled three times, each into its own static library with
# its own instruction-set flags: AVX-512 (F/DQ/BW/VL + FMA), AVX2 + FMA, and the compiler's
# default target. addon.cc (the N-API glue, default target) picks one at load time with
# __builtin_cpu_supports, so the built addon runs on any x86-64 machine: no -march=native.
# OpenMP (-fopenmp, libgomp) runs the parallel loops; OMP_NUM_THREADS is respected.
# Build: `npm run build:native` (= node-gyp rebuild -C native).
{
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
      'target_name': 'mmgpt_native',
      'sources': ['src/addon.cc'],
      'dependencies': [
        'mmgpt_kernels_base',
        'mmgpt_kernels_avx2',
        'mmgpt_kernels_avx512',
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': ['NAPI_VERSION=8'],
      'ldflags': ['-fopenmp'],
      'libraries': ['-fopenmp'],
    },
  ],
}
