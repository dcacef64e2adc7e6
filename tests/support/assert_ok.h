// gtest assertions for gatehouse::Status and Result.
#pragma once

#include <gtest/gtest.h>

#include <utility>

#include "gatehouse/status.h"

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::gatehouse::Status s_ = (expr);                  \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << s_.ToString(); \
  } while (0)

// Unwraps a Result in a test, failing the test (and returning) if it is an error.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                        \
  auto lhs##_r_ = (expr);                                                      \
  ASSERT_TRUE(lhs##_r_.ok()) << #expr << ": " << lhs##_r_.status().ToString(); \
  auto lhs = std::move(lhs##_r_).value()
