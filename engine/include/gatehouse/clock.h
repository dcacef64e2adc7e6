// Clock: the only source of "now" in the engine, injected so tests can move time.
//
// RealClock reads the system clock; FakeClock holds a value tests set. Both are
// thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gatehouse {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since the Unix epoch.
  virtual int64_t NowSeconds() const = 0;
  // Milliseconds on a clock that never jumps (not wall time): for intervals
  // such as the store's staleness lease.
  virtual int64_t MonotonicMillis() const = 0;
};

class RealClock final : public Clock {
 public:
  int64_t NowSeconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // A process-wide instance.
  static const RealClock& Instance() {
    static const RealClock clock;
    return clock;
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now = 1767225600) : now_(now) {}
  int64_t NowSeconds() const override { return now_.load(std::memory_order_relaxed); }
  void Set(int64_t now) { now_.store(now, std::memory_order_relaxed); }
  void Advance(int64_t seconds) { now_.fetch_add(seconds, std::memory_order_relaxed); }
  // The monotonic clock moves only when told (and not with Set/Advance).
  int64_t MonotonicMillis() const override { return mono_ms_.load(std::memory_order_relaxed); }
  void AdvanceMillis(int64_t ms) { mono_ms_.fetch_add(ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> mono_ms_{1'000'000};
};

}  // namespace gatehouse
