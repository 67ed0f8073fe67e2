// Optional, not part of the build: single-thread GEMM GFLOP/s of this addon's kernel builds
// against OpenBLAS's sgemm on the seed model's shapes, timed by thread CPU time (so a busy
// machine does not distort the numbers). Needs Debian's libopenblas-dev; after
// `npm run build:native`, from native/:
//
//   g++ -O2 -fopenmp tools/gemm_vs_openblas.cc \
//     build/Release/obj.target/mmgpt_kernels_avx512/src/kernels_avx512.o \
//     build/Release/obj.target/mmgpt_kernels_avx2/src/kernels_avx2.o \
//     build/Release/obj.target/mmgpt_kernels_base/src/kernels_base.o -lopenblas -o /tmp/gemm_vs_openblas
//   OPENBLAS_NUM_THREADS=1 /tmp/gemm_vs_openblas             # OpenBLAS with its configured core
//   OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX /tmp/gemm_vs_openblas   # its AVX-512 kernels

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../src/kernels.h"

static double cpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static float* randomArray(long n) {
  float* a = (float*)aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
  for (long i = 0; i < n; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
  return a;
}

int main() {
  struct Shape {
    const char* name;
    long batch, m, n, k;
    int transA, transB;
  } shapes[] = {
      {"qkv [1856x128]@[128x384]", 1, 1856, 384, 128, 0, 0},
      {"fc [1856x128]@[128x512]", 1, 1856, 512, 128, 0, 0},
      {"proj [1856x512]@[512x128]", 1, 1856, 128, 512, 0, 0},
      {"head [1856x128]@[128x1058]", 1, 1856, 1058, 128, 0, 0},
      {"dX [1856x384]@[384x128]^T", 1, 1856, 128, 384, 0, 1},
      {"dW [128x1856]^T@[1856x384]", 1, 128, 384, 1856, 1, 0},
      {"att 128x[58x32]@[32x58]^T", 128, 58, 58, 32, 0, 1},
      {"att 128x[58x58]@[58x32]", 128, 58, 32, 58, 0, 0},
      {"att 128x[58x58]^T@[58x32]", 128, 58, 32, 58, 1, 0},
  };
  const mmgpt::KernelTable* builds[] = {mmgpt_kernels_avx512(), mmgpt_kernels_avx2(),
                                        mmgpt_kernels_scalar()};
  printf("%-30s %9s %9s %9s %9s   (GFLOP/s, 1 thread)\n", "shape", "avx512", "avx2", "baseline",
         "openblas");
  for (const Shape& s : shapes) {
    float* A = randomArray(s.batch * s.m * s.k);
    float* B = randomArray(s.batch * s.k * s.n);
    float* C = randomArray(s.batch * s.m * s.n);
    const double flops = 2.0 * s.batch * s.m * s.n * s.k;
    double gflops[4];
    for (int which = 0; which < 4; which++) {
      double best = 1e30;
      for (int rep = 0; rep < (which == 2 ? 5 : 20); rep++) {
        const double t0 = cpuSeconds();
        if (which < 3) {
          mmgpt::MatmulArgs p{s.batch, s.m,           s.n,           s.k,           s.transA,
                              s.transB, s.m * s.k, s.k * s.n, s.m * s.n, 1.0, 0};
          builds[which]->matmul(A, B, C, &p, 1);
        } else {
          for (long b = 0; b < s.batch; b++) {
            cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans,
                        s.transB ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f,
                        A + b * s.m * s.k, s.transA ? s.m : s.k, B + b * s.k * s.n,
                        s.transB ? s.k : s.n, 0.0f, C + b * s.m * s.n, s.n);
          }
        }
        const double t = cpuSeconds() - t0;
        if (t < best) best = t;
      }
      gflops[which] = flops / best / 1e9;
    }
    printf("%-30s %9.1f %9.1f %9.1f %9.1f\n", s.name, gflops[0], gflops[1], gflops[2], gflops[3]);
    free(A);
    free(B);
    free(C);
  }
  return 0;
}
