// The OpenMP API as one thread sees it, for the WebAssembly build of the kernels (kernels_wasm.cc).
//
// A page served without COOP/COEP headers (GitHub Pages, most static hosts) has no
// SharedArrayBuffer, so the wasm build runs single-threaded: without -fopenmp (only -fopenmp-simd,
// which honours `#pragma omp simd`) the compiler ignores every other `#pragma omp`, and
// kernels.inl's few OpenMP calls see a team of one. This header sits on the wasm build's include
// path in place of the compiler's omp.h (build-wasm.js: -I native/wasm).

#ifndef MMGPT_WASM_OMP_H
#define MMGPT_WASM_OMP_H

static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }

#endif  // MMGPT_WASM_OMP_H
