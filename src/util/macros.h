// Flat error paths: JM_RETURN_IF_ERROR(expr) and JM_ASSIGN_OR_RETURN(lhs, expr).
#pragma once

#include "jaiminho/result.h"

#define JM_CONCAT_INNER(a, b) a##b
#define JM_CONCAT(a, b) JM_CONCAT_INNER(a, b)

// Evaluates a Status/Result expression and returns its error from the caller.
#define JM_RETURN_IF_ERROR(expr)                                     \
  do {                                                               \
    auto&& _jm_st = (expr);                                          \
    if (!_jm_st) return ::tl::unexpected(std::move(_jm_st).error()); \
  } while (0)

// `lhs` is a declaration (`auto x`), which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define JM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)             \
  auto tmp = (expr);                                         \
  if (!tmp) return ::tl::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)
// NOLINTEND(bugprone-macro-parentheses)

// `JM_ASSIGN_OR_RETURN(auto x, Compute());`
#define JM_ASSIGN_OR_RETURN(lhs, expr) JM_ASSIGN_OR_RETURN_IMPL(JM_CONCAT(_jm_r_, __LINE__), lhs, expr)
