#include "util/user.h"

#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace jaiminho::internal {

std::string EffectiveUserName() {
  return UserName(::geteuid());
}

std::string UserName(unsigned uid) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : size_t{16384});
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && found->pw_name != nullptr &&
      found->pw_name[0] != '\0') {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

}  // namespace jaiminho::internal
