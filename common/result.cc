#include "common/result.h"

#include <cstring>

namespace appvirt {

std::string Error::str() const {
  if (err == 0) return message;
  return message + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")";
}

}  // namespace appvirt
