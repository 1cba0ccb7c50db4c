// bench/harness.h: what biolm-bench measures around a step, independent of the model.
//
//   timing     warm-up steps, then each step timed alone; median / min / max. On CUDA the clock
//              stops after a device synchronisation (the only one per step: the measurement).
//   memory     peak resident set (VmHWM) and, on CUDA, the caching allocator's peak.
//   hardware   the measured matmul peak of the device in this process (fp32 on CPU, bf16 on CUDA),
//              the BLAS library really mapped into the process, and its thread count.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace biolm::bench {

struct StepTimes {
  std::vector<double> ms;  ///< one entry per measured step
  double median_ms = 0.0;
  double min_ms = 0.0;
  double max_ms = 0.0;
};

/// Runs `step` warmup + steps times; times each of the last `steps` calls. On CUDA the device is
/// synchronised before the clock starts and before it stops.
StepTimes time_steps(int warmup, int steps, const std::function<void()>& step, const c10::Device& device);

/// Median of a non-empty vector.
double median(std::vector<double> v);

/// Peak resident set size of this process in MiB (VmHWM; getrusage's ru_maxrss as fallback).
double peak_rss_mb();

/// Peak CUDA memory held by tensors on `device` in MiB since the last reset; nullopt on CPU.
std::optional<double> peak_cuda_mb(const c10::Device& device);
void reset_peak_cuda(const c10::Device& device);

/// The BLAS / LAPACK / OpenMP shared objects mapped into this process (from /proc/self/maps),
/// real paths, comma-separated, e.g. ".../openblas-pthread/libblas.so.3,.../libopenblas.so.0".
std::string mapped_blas_libraries();
/// openblas_get_config() when OpenBLAS is loaded ("OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell ..."),
/// "" otherwise.
std::string openblas_config();
/// Sets OpenBLAS's own thread pool to n threads when OpenBLAS is loaded; returns the count it then
/// reports, or nullopt without OpenBLAS.
std::optional<int> set_openblas_threads(int n);

/// Best-of-`reps` FLOP/s of an n x n x n matmul on `device` in `dtype` (2 n^3 flops per product),
/// after 3 untimed products.
double measure_matmul_peak(const c10::Device& device, c10::ScalarType dtype, int64_t n, int reps);

}  // namespace biolm::bench
