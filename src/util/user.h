// Who runs this process, for the audit trail of operator actions
// (Event::history): the name of the effective user, or "uid N" when it has
// none (no passwd entry, or a static binary without NSS).
//
// Thread-safety: safe to call from any thread (getpwuid_r).
#pragma once

#include <string>

namespace jaiminho::internal {

std::string EffectiveUserName();
// The name of user `uid`, or "uid N" when it has none.
std::string UserName(unsigned uid);

}  // namespace jaiminho::internal
