// Argument checking shared by the N-API glue of both native backends: native/src/addon.cc (cpu,
// typed arrays; also the host sampler's entry points, sampling.cc) and native/cuda/addon_cuda.cc
// (cuda, device buffer handles).
//
// `ArgsBase` checks what the two have in common: the argument count, numbers, non-negative
// integer sizes below 2^53, flags, strings, integer lists (shape, strides, perm) and overflow-
// checked size arithmetic; every failure throws a JS TypeError / RangeError "fn: what was wrong".
// Each addon derives its own class for its buffers (HostArgs here: host typed arrays, for the cpu
// backend and the host sampler; Args: cuda buffers). Also shared: JS ToUint32 and the op-name
// tables of binary/unary. The entry points themselves, written once for both, are in
// kernel_bindings.h. Header-only; its includers are compiled for the default target (no
// ISA-specific code here).

#ifndef MMGPT_NAPI_ARGS_H
#define MMGPT_NAPI_ARGS_H

#include <math.h>
#include <napi.h>
#include <stdint.h>
#include <stdio.h>

#include <string>
#include <vector>

namespace mmgpt {
namespace napi {

inline std::string numStr(double d) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

/**
 * A short description of a JS value for error messages. `hostNote` is appended to Float32Array
 * and Int32Array (the cuda glue says they are host memory, not cuda buffers).
 */
inline std::string describe(const Napi::Value& v, const char* hostNote = "") {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return numStr(v.As<Napi::Number>().DoubleValue());
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "a string";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array:
        return std::string("a Float32Array") + hostNote;
      case napi_int32_array:
        return std::string("an Int32Array") + hostNote;
      case napi_float64_array:
        return "a Float64Array";
      case napi_uint8_array:
        return "a Uint8Array";
      default:
        return "another typed array";
    }
  }
  if (v.IsArray()) return "an array";
  return "an object";
}

/** JS ToUint32 / ToInt32 of a number (what storing into a Uint32Array / Int32Array does). */
inline uint32_t toUint32(double d) {
  if (!isfinite(d)) return 0;
  double t = fmod(trunc(d), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return (uint32_t)t;
}

/**
 * A buffer of 4-byte elements whose bits a kernel moves without reading them as numbers (fill,
 * copyBlock, permute): float32 or int32, `isFloat` says which.
 */
struct Words {
  uint32_t* data;
  bool isFloat;
};

/** The checks common to both addons' entry points; see the file comment. */
class ArgsBase {
 public:
  /** The largest rank ints() accepts. */
  static const uint32_t kMaxRank = 16;

  ArgsBase(const Napi::CallbackInfo& info, const char* fn, size_t nargs, const char* hostNote)
      : info_(info), fn_(fn), hostNote_(hostNote) {
    if (info.Length() != nargs) {
      typeError("expects " + std::to_string(nargs) + " arguments, got " +
                std::to_string(info.Length()));
    }
  }

  [[noreturn]] void typeError(const std::string& msg) const {
    throw Napi::TypeError::New(info_.Env(), fn_ + ": " + msg);
  }
  [[noreturn]] void rangeError(const std::string& msg) const {
    throw Napi::RangeError::New(info_.Env(), fn_ + ": " + msg);
  }

  Napi::Env env() const { return info_.Env(); }

  std::string describe(const Napi::Value& v) const { return napi::describe(v, hostNote_); }

  double number(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) typeError(std::string(name) + " must be a number, got " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  /** A non-negative integer below 2^53. */
  int64_t size(size_t i, const char* name) const {
    const double d = number(i, name);
    if (!(d >= 0) || d > 9007199254740991.0 || d != floor(d)) {
      rangeError(std::string(name) + " must be a non-negative integer, got " + numStr(d));
    }
    return (int64_t)d;
  }
  /** True when argument i is null (an optional buffer left out). */
  bool isNull(size_t i) const { return info_[i].IsNull(); }
  bool flag(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsBoolean()) typeError(std::string(name) + " must be a boolean, got " + describe(v));
    return v.As<Napi::Boolean>().Value();
  }
  std::string str(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsString()) typeError(std::string(name) + " must be a string, got " + describe(v));
    return v.As<Napi::String>().Utf8Value();
  }
  /** A dtype name: true for 'float32', false for 'int32'; TypeError otherwise. */
  bool isFloatDtype(size_t i) const {
    const std::string s = str(i, "dtype");
    if (s != "float32" && s != "int32") {
      typeError("dtype must be 'float32' or 'int32', got '" + s + "'");
    }
    return s == "float32";
  }
  /** An array of non-negative integers (shape, strides, perm) of length <= kMaxRank. */
  std::vector<int64_t> ints(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsArray()) typeError(std::string(name) + " must be an array of integers");
    const Napi::Array arr = v.As<Napi::Array>();
    const uint32_t len = arr.Length();
    if (len > kMaxRank) {
      rangeError(std::string(name) + " has rank " + std::to_string(len) + " (at most " +
                 std::to_string(kMaxRank) + " supported)");
    }
    std::vector<int64_t> out(len);
    for (uint32_t j = 0; j < len; j++) {
      const Napi::Value e = arr.Get(j);
      const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d > 9007199254740991.0 || d != floor(d)) {
        rangeError(std::string(name) + "[" + std::to_string(j) +
                   "] must be a non-negative integer, got " + describe(e));
      }
      out[j] = (int64_t)d;
    }
    return out;
  }
  /**
   * A JS array argument (a list of buffers or numbers). count < 0: any length, stored in
   * *count; else it must have exactly *count elements (`of` names what sets the count).
   */
  Napi::Array list(size_t i, const char* name, int64_t* count, const char* of) const {
    if (!info_[i].IsArray()) typeError(std::string(name) + " must be an array");
    Napi::Array arr = info_[i].As<Napi::Array>();
    if (*count < 0) {
      *count = arr.Length();
    } else if ((int64_t)arr.Length() != *count) {
      rangeError(std::string(name) + " has " + std::to_string(arr.Length()) + " elements but " +
                 of + " has " + std::to_string(*count));
    }
    return arr;
  }
  /** Element j of a list of sizes: a non-negative integer below 2^53. */
  int64_t sizeAt(const Napi::Array& arr, uint32_t j, const char* name) const {
    const Napi::Value e = arr.Get(j);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d > 9007199254740991.0 || d != floor(d)) {
      rangeError(std::string(name) + "[" + std::to_string(j) +
                 "] must be a non-negative integer, got " + describe(e));
    }
    return (int64_t)d;
  }
  /** Element j of a list of numbers. */
  double numberAt(const Napi::Array& arr, uint32_t j, const char* name) const {
    const Napi::Value e = arr.Get(j);
    if (!e.IsNumber()) {
      typeError(std::string(name) + "[" + std::to_string(j) + "] must be a number, got " +
                describe(e));
    }
    return e.As<Napi::Number>().DoubleValue();
  }

  /** a * b, or a RangeError if it overflows int64 (sizes from JS can be up to 2^53). */
  int64_t mul(int64_t a, int64_t b) const {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) rangeError("sizes overflow");
    return r;
  }
  int64_t add(int64_t a, int64_t b) const {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) rangeError("sizes overflow");
    return r;
  }

 protected:
  const Napi::CallbackInfo& info_;
  std::string fn_;
  const char* hostNote_;
};

/**
 * ArgsBase plus host typed arrays read in place: the cpu backend's buffers (Float32Array /
 * Int32Array, addon.cc) and the host sampler's (also Float64Array and Uint8Array, sampling.cc).
 */
class HostArgs : public ArgsBase {
 public:
  HostArgs(const Napi::CallbackInfo& info, const char* fn, size_t nargs)
      : ArgsBase(info, fn, nargs, "") {}

  float* f32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<float*>(array(info_[i], name, napi_float32_array, minLength));
  }
  int32_t* i32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<int32_t*>(array(info_[i], name, napi_int32_array, minLength));
  }
  double* f64(size_t i, const char* name, int64_t minLength) const {
    return static_cast<double*>(array(info_[i], name, napi_float64_array, minLength));
  }
  uint8_t* u8(size_t i, const char* name, int64_t minLength) const {
    return static_cast<uint8_t*>(array(info_[i], name, napi_uint8_array, minLength));
  }
  /** Like f32, for a value that is not itself an argument (an element of an array argument). */
  float* f32Value(const Napi::Value& value, const std::string& name, int64_t minLength) const {
    return static_cast<float*>(array(value, name, napi_float32_array, minLength));
  }
  /** A Float32Array or Int32Array (4-byte elements). */
  Words any32(size_t i, const char* name, int64_t minLength) const {
    const Napi::Value v = info_[i];
    if (v.IsTypedArray()) {
      const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
      if (t == napi_float32_array || t == napi_int32_array) {
        return {static_cast<uint32_t*>(array(v, name, t, minLength)), t == napi_float32_array};
      }
    }
    typeError(std::string(name) + " must be a Float32Array or Int32Array, got " + describe(v));
  }
  /** Length of argument i, a typed array already checked (for checks that depend on it). */
  int64_t length(size_t i) const {
    return (int64_t)info_[i].As<Napi::TypedArray>().ElementLength();
  }

 private:
  /** A typed array of the given kind with at least minLength elements: its data pointer. */
  void* array(const Napi::Value& value, const std::string& name, napi_typedarray_type type,
              int64_t minLength) const {
    napi_typedarray_type actual;
    size_t length = 0;
    void* data = nullptr;
    if (!value.IsTypedArray() ||
        napi_get_typedarray_info(info_.Env(), value, &actual, &length, &data, nullptr,
                                 nullptr) != napi_ok ||
        actual != type) {
      typeError(name + " must be " + typeName(type) + ", got " + describe(value));
    }
    if ((int64_t)length < minLength) {
      rangeError(name + " has " + std::to_string(length) +
                 " elements but the kernel needs at least " + std::to_string(minLength));
    }
    return data;
  }
  static const char* typeName(napi_typedarray_type t) {
    switch (t) {
      case napi_float32_array:
        return "a Float32Array";
      case napi_int32_array:
        return "an Int32Array";
      case napi_float64_array:
        return "a Float64Array";
      default:
        return "a Uint8Array";
    }
  }
};

/** The op code of a binary ("add", ...) or unary ("exp", ...) op name; TypeError otherwise. */
inline int opCode(const ArgsBase& c, const std::string& op, bool unary) {
  static const char* const binaryNames[] = {"add", "sub", "mul", "div"};
  static const char* const unaryNames[] = {"exp",  "log", "tanh", "relu",
                                           "gelu", "neg", "sqrt", "square"};
  const char* const* names = unary ? unaryNames : binaryNames;
  const int count = unary ? 8 : 4;
  for (int i = 0; i < count; i++) {
    if (op == names[i]) return i;
  }
  std::string accepted;
  for (int i = 0; i < count; i++) accepted += (i ? ", " : "") + std::string(names[i]);
  c.typeError("unknown op '" + op + "' (accepted: " + accepted + ")");
}

}  // namespace napi
}  // namespace mmgpt

#endif  // MMGPT_NAPI_ARGS_H
