// Minimal assertion helpers for sattn's C++ tests (no gtest offline): each failed check prints
// file:line and the expression, and the test binary exits non-zero at the end.
#ifndef SATTN_TESTING_CHECK_H_
#define SATTN_TESTING_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace sattn_testing {
inline int& Failures() {
  static int n = 0;
  return n;
}
inline int Finish(const char* name) {
  if (Failures()) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, Failures());
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}
}  // namespace sattn_testing

#define SATTN_CHECK(cond)                                                       \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++sattn_testing::Failures();                                              \
    }                                                                           \
  } while (0)

#define SATTN_CHECK_EQ(a, b)                                                              \
  do {                                                                                    \
    auto _va = (a);                                                                       \
    auto _vb = (b);                                                                       \
    if (!(_va == _vb)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s (%lld) != %s (%lld)\n", __FILE__, __LINE__, #a, \
                   (long long)_va, #b, (long long)_vb);                                   \
      ++sattn_testing::Failures();                                                        \
    }                                                                                     \
  } while (0)

#endif  // SATTN_TESTING_CHECK_H_
